import Foundation
import HTTPTypes
import LBPool
import MetricsTestKit
import NIOCore
import Synchronization
import Testing

/// Connections coming and going under load against real nginx: GOAWAY, graceful restarts,
/// lifetime rotation, and the closing signal of a long-lived stream.
@Suite(.serialized, .timeLimit(.minutes(3))) struct LifecycleIntegrationTests {
    static let name = "api.demo.svc.cluster.local"
    static let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]

    func fleet(
        keepaliveRequests: Int = 1_000_000, httpVersion: LBPool.Configuration.HTTPVersion = .http2
    ) async throws -> ([NginxBackend], DNSServer, Int) {
        try await startFleet(Self.ips) { try nginx($0, $1, for: httpVersion, keepaliveRequests: keepaliveRequests) }
    }

    func post(id: String) -> HTTPRequest {
        var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/")
        request.headerFields[HTTPField.Name("x-request-id")!] = id
        return request
    }

    /// Sends `count` requests from `concurrency` workers; returns the failures.
    func load(_ pool: LBPool, count: Int, concurrency: Int, body: RequestBody?, makeRequest: @escaping @Sendable (Int) -> HTTPRequest) async -> [String] {
        let next = TicketCounter()
        return await withTaskGroup(of: [String].self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var failures: [String] = []
                    while true {
                        let number = next.take()
                        guard number < count else { return failures }
                        do {
                            let response = try await pool.execute(makeRequest(number), body: body)
                            if response.head.status != .ok { failures.append("HTTP \(response.head.status.code)") }
                        } catch {
                            failures.append("\(error)")
                        }
                    }
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
    }

    @Test func postsSurviveAGoAwayEveryFiftyRequestsWithNothingLostOrDuplicated() async throws {
        let (backends, dns, port) = try await fleet(keepaliveRequests: 50)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns))
        let body = RequestBody.bytes(ByteBuffer(repeating: UInt8(ascii: "b"), count: 64))
        let failures = try await withRunningPool(pool) { pool in
            await load(pool, count: 20_000, concurrency: 64, body: body) { post(id: "post-\($0)") }
        }
        #expect(failures.count == 0, "\(failures.prefix(5))")
        let log = try backends.flatMap { try $0.accessLog() }
        #expect(log.count == 20_000, "requests the backends logged")
        #expect(Set(log.map(\.requestID)).count == 20_000, "every id exactly once")
        #expect(log.allSatisfy { $0.method == "POST" && $0.status == 200 })
        // Each connection took at most 50 requests: the GOAWAYs really happened.
        let perConnection = Dictionary(grouping: log, by: { "\($0.server)#\($0.connection)" }).mapValues(\.count)
        #expect(perConnection.count >= 20_000 / 50)
        #expect(perConnection.values.allSatisfy { $0 <= 50 })
    }

    @Test func learnsTheServersStreamsPerConnectionAndSendsNoStreamPastIt() async throws {
        let (backends, dns, port) = try await fleet(keepaliveRequests: 20)
        defer { withExtendedLifetime((backends, dns)) {} }
        let metrics = TestMetrics()
        let records = LogRecords()
        let pool = try LBPool(
            target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns),
            logger: records.logger(), metrics: metrics)
        let body = RequestBody.bytes(ByteBuffer(repeating: UInt8(ascii: "b"), count: 64))
        let transparentRetries = { try metrics.expectCounter("lbpool_transparent_retries_total").totalValue }
        let (learning, afterwards, retriesBefore) = try await withRunningPool(pool) { pool in
            let learning = await load(pool, count: 1_000, concurrency: 32, body: body) { post(id: "learn-\($0)") }
            let before = try transparentRetries()
            let afterwards = await load(pool, count: 3_000, concurrency: 32, body: body) { post(id: "capped-\($0)") }
            return (learning, afterwards, before)
        }
        #expect(learning.isEmpty && afterwards.isEmpty, "\((learning + afterwards).prefix(5))")
        let learned = records.all.filter { $0.message == "learned the server's streams per connection" }
        #expect(Set(learned.compactMap { $0.metadata["address"] }).count == 3)
        #expect(learned.allSatisfy { $0.metadata["streams"] == "20" })
        // Once learned, no stream went past a connection's 20: nothing was refused and re-sent.
        #expect(try transparentRetries() == retriesBefore)
        let log = try backends.flatMap { try $0.accessLog() }
        #expect(log.count == 4_000)
        #expect(Set(log.map(\.requestID)).count == 4_000)
        let perConnection = Dictionary(grouping: log, by: { "\($0.server)#\($0.connection)" }).mapValues(\.count)
        #expect(perConnection.values.allSatisfy { $0 <= 20 })
    }

    @Test(arguments: bothHTTPVersions)
    func rollingRestartFailsNoRequest(_ httpVersion: LBPool.Configuration.HTTPVersion) async throws {
        let (backends, dns, port) = try await fleet(httpVersion: httpVersion)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(
            target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns, httpVersion: httpVersion))
        let log = RequestLog()
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            try await log.sending(to: pool, workers: 32) {
                for backend in backends {
                    let before = log.total
                    await backend.quit()  // GOAWAY, finishes what it has, exits
                    try await backend.start()
                    try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
                    try await waitFor("requests after restarting \(backend.ip)") { log.total > before + 100 }
                }
            }
        }
        #expect(log.failures.count == 0, "\(log.failures.prefix(5))")
        #expect(log.total > 300)
        for backend in backends {
            #expect(log.successes(on: backend.ip, after: .now - .seconds(3600)) > 0)
        }
    }

    @Test(arguments: bothHTTPVersions)
    func rotationReplacesEachConnectionBeforeItDrains(_ httpVersion: LBPool.Configuration.HTTPVersion) async throws {
        let (backends, dns, port) = try await fleet(httpVersion: httpVersion)
        defer { withExtendedLifetime((backends, dns)) {} }
        var configuration = testConfiguration(dns: dns, httpVersion: httpVersion)
        configuration.maxConnectionLifetime = .seconds(1)
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: configuration)
        let events = pool.events()
        let collected = Task {
            var all: [PoolEvent] = []
            for await event in events { all.append(event) }
            return all
        }
        let log = RequestLog()
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            try await log.sending(to: pool, workers: 8) {
                try await Task.sleep(for: .seconds(8))
            }
        }
        let all = await collected.value
        #expect(log.failures.count == 0, "\(log.failures.prefix(5))")
        for backend in backends {
            let connections = Set(try backend.accessLog().map(\.connection))
            #expect(connections.count >= 4, "\(backend.ip) saw \(connections.count) connections in 8 s")
        }
        let rotations = all.enumerated().filter { $0.element.kind == .draining(.lifetimeExpired) }
        #expect(rotations.count >= 3 * 4)
        for (index, drain) in rotations {
            guard let old = drain.subconnection else { continue }
            let oldReady = all.firstIndex { $0.subconnection == old && $0.kind == .ready }
            let replacement = all[..<index].lastIndex { event in
                event.address == drain.address && event.kind == .ready && event.subconnection != old
            }
            #expect(
                oldReady != nil && replacement != nil && replacement! > oldReady!,
                "\(drain): no replacement ready at \(drain.address) between its ready and its drain")
        }
    }

    @Test func longStreamHearsTheGracefulStopAndContinuesElsewhere() async throws {
        let (backends, dns, port) = try await fleet()
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns))
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            let stream = HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/stream")
            let (first, reason, bytesWhenSignalled) = try await pool.execute(stream) { response in
                #expect(response.head.status == .ok)
                let backend = try #require(backends.first { $0.ip == response.servedBy.ip })
                var received = 0
                var iterator = response.body.makeAsyncIterator()
                // Read a little, then stop that pod the way Kubernetes does on a rollout.
                while received < 64 << 10, let chunk = try await iterator.next() { received += chunk.readableBytes }
                backend.beginQuit()
                let reason = try await response.connectionClosing.wait()
                // The stream is still open and still delivering when the signal arrives.
                let more = try await iterator.next()
                #expect(more != nil, "stream torn down before its closing signal")
                return (response.servedBy, reason, received)
            }
            guard case .goAway(let code, _, _) = reason else {
                Issue.record("expected GOAWAY, got \(reason)")
                return
            }
            #expect(code == .noError)
            #expect(bytesWhenSignalled < 2 << 20)
            // The caller resumes with a new request, which goes to another address.
            let next = try await pool.execute(get(id: "after-closing"))
            #expect(next.servedBy != first)
            await backends.first { $0.ip == first.ip }?.waitForExit()
        }
    }
}

/// Hands out 0, 1, 2, … to concurrent workers.
final class TicketCounter: Sendable {
    private let value = Atomic<Int>(0)

    func take() -> Int {
        value.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}
