import Foundation
import HTTPTypes
import LBPool
import NIOCore
import Testing

/// The pool against real nginx backends on 127.0.0.x and a real dnsmasq.
@Suite(.serialized, .timeLimit(.minutes(3))) struct PoolIntegrationTests {
    static let name = "api.demo.svc.cluster.local"

    /// Three backends on one port (like three pods), and DNS answering the name with them.
    func fleet(
        _ ips: [String], ttl: Int = 5, keepaliveRequests: Int = 1_000_000, httpVersion: LBPool.Configuration.HTTPVersion = .http2
    ) async throws -> ([NginxBackend], DNSServer, Int) {
        try await startFleet(ips, ttl: ttl, alsoFree: ["127.0.0.5", "127.0.0.6"]) {
            try nginx($0, $1, for: httpVersion, keepaliveRequests: keepaliveRequests)
        }
    }

    @Test func readinessTimeoutSaysWhatTheMissingAddressIsDoing() async throws {
        // Nothing listens there: every dial is refused.
        let port = try freePort(alsoOn: ["127.0.0.9"])
        let pool = try LBPool(target: "http://127.0.0.9:\(port)", configuration: testConfiguration(dns: nil))
        try await withRunningPool(pool) { pool in
            let error = await #expect(throws: LBPoolError.self) { try await pool.waitUntilReady(timeout: .milliseconds(500)) }
            #expect(error?.code == .deadlineExceeded)
            let message = error?.message ?? ""
            #expect(message.contains("0 of 1 addresses ready"), "\(message)")
            #expect(message.contains("not ready: 127.0.0.9:\(port)"), "\(message)")
            #expect(message.contains("last dial: connection error"), "\(message)")
        }
    }

    @Test func aServerThatAnswersInHTTP1IsNamedAsSuch() async throws {
        // nginx without `http2` on the port: it answers the h2c preface in HTTP/1.1.
        let port = try freePort(alsoOn: ["127.0.0.9"])
        let backend = try NginxBackend(ip: "127.0.0.9", port: port, http1Only: true)
        try await backend.start()
        defer { withExtendedLifetime(backend) {} }
        let pool = try LBPool(target: "http://127.0.0.9:\(port)", configuration: testConfiguration(dns: nil))
        try await withRunningPool(pool) { pool in
            let error = await #expect(throws: LBPoolError.self) { try await pool.waitUntilReady(timeout: .seconds(2)) }
            let message = error?.message ?? ""
            #expect(message.contains("the server answered in HTTP/1 ('HTTP/1.1 400 Bad Request"), "\(message)")
        }
    }

    @Test func threeAddressesSplitSequentialRequestsExactlyEvenly() async throws {
        let (backends, dns, port) = try await fleet(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns))
        let served = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            var served: [String: Int] = [:]
            for number in 0..<3000 {
                let response = try await pool.execute(get(id: "even-\(number)"))
                #expect(response.head.status == .ok)
                #expect(String(buffer: response.body) == response.servedBy.ip + "\n")
                served[response.servedBy.ip, default: 0] += 1
            }
            return served
        }
        #expect(served == ["127.0.0.2": 1000, "127.0.0.3": 1000, "127.0.0.4": 1000])
        for backend in backends {
            let log = try backend.accessLog()
            #expect(log.count == 1000, "\(backend.ip) logged \(log.count) requests")
            #expect(log.allSatisfy { $0.server == backend.ip && $0.status == 200 })
        }
        // Every request id reached exactly one backend, once.
        let ids = try backends.flatMap { try $0.accessLog().map(\.requestID) }
        #expect(Set(ids).count == 3000 && ids.count == 3000)
    }

    @Test func minConnectionsAreWarmBeforeAnyRequest() async throws {
        let (backends, dns, port) = try await fleet(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns, minConnections: 2))
        try await withRunningPool(pool) { pool in
            for backend in backends {
                try await waitFor("2 connections to \(backend.ip)") {
                    try establishedConnections(to: backend.ip, port: port) >= 2
                }
            }
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            for backend in backends {
                #expect(try establishedConnections(to: backend.ip, port: port) == 2, "\(backend.ip)")
                #expect(try backend.accessLog().isEmpty, "no request was sent")
            }
        }
    }

    @Test(arguments: bothHTTPVersions)
    func followsDNSWhenTheServiceScalesUpAndDown(_ httpVersion: LBPool.Configuration.HTTPVersion) async throws {
        let ttl = 1
        let (backends, dns, port) = try await fleet(["127.0.0.2", "127.0.0.3"], ttl: ttl, httpVersion: httpVersion)
        defer { withExtendedLifetime((backends, dns)) {} }
        let added = try nginx("127.0.0.4", port, for: httpVersion)
        defer { withExtendedLifetime(added) {} }
        try await added.start()
        let pool = try LBPool(
            target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns, httpVersion: httpVersion))
        let log = RequestLog()
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 2, timeout: .seconds(10))
            try await log.sending(to: pool, workers: 4) {
                // Scale up: 127.0.0.4 joins.
                try dns.setRecords([Self.name: ["127.0.0.2", "127.0.0.3", "127.0.0.4"]])
                let scaledUp = ContinuousClock.now
                dns.reload()
                try await waitFor("a request served by 127.0.0.4", timeout: .seconds(ttl + 5)) {
                    log.firstSuccess(on: "127.0.0.4") != nil
                }
                let firstOnNew = try #require(log.firstSuccess(on: "127.0.0.4"))
                #expect(firstOnNew - scaledUp <= .seconds(ttl + 1), "new address first served after \(firstOnNew - scaledUp)")

                // Scale down: 127.0.0.2 leaves.
                try dns.setRecords([Self.name: ["127.0.0.3", "127.0.0.4"]])
                let scaledDown = ContinuousClock.now
                dns.reload()
                try await waitFor("connections to 127.0.0.2 to close", timeout: .seconds(ttl + 5)) {
                    try establishedConnections(to: "127.0.0.2", port: port) == 0
                }
                let cutoff = scaledDown + .seconds(ttl + 1)
                try await Task.sleep(until: max(cutoff, .now) + .milliseconds(300), clock: .continuous)
                #expect(
                    log.lastStart(on: "127.0.0.2").map { $0 <= cutoff } ?? true,
                    "a request started on the removed address after TTL + 1 s")
                #expect(log.successes(on: "127.0.0.3", after: cutoff) > 0)
                #expect(log.successes(on: "127.0.0.4", after: cutoff) > 0)
            }
        }
        #expect(log.failures.count == 0, "\(log.failures.prefix(5))")
        #expect(log.total > 100)
    }

    @Test func keepsServingTheLastAddressesWhileDNSIsDown() async throws {
        let ttl = 1
        let (backends, dns, port) = try await fleet(["127.0.0.2", "127.0.0.3"], ttl: ttl)
        defer { withExtendedLifetime((backends, dns)) {} }
        let later = try NginxBackend(ip: "127.0.0.4", port: port)
        defer { withExtendedLifetime(later) {} }
        try await later.start()
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns))
        let log = RequestLog()
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 2, timeout: .seconds(10))
            try await log.sending(to: pool, workers: 2) {
                await dns.stop()
                let stopped = ContinuousClock.now
                // Several refresh periods without DNS.
                try await Task.sleep(for: .seconds(3 * ttl + 1))
                #expect(log.successes(on: "127.0.0.2", after: stopped + .seconds(2 * ttl)) > 0)
                #expect(log.successes(on: "127.0.0.3", after: stopped + .seconds(2 * ttl)) > 0)

                try dns.setRecords([Self.name: ["127.0.0.2", "127.0.0.3", "127.0.0.4"]])
                try await dns.start()
                try await waitFor("refresh to resume and reach 127.0.0.4", timeout: .seconds(10)) {
                    log.firstSuccess(on: "127.0.0.4") != nil
                }
            }
        }
        #expect(log.failures.count == 0, "\(log.failures.prefix(5))")
    }

    @Test func survivesGoAwayEveryFiftyRequests() async throws {
        let (backends, dns, port) = try await fleet(["127.0.0.2", "127.0.0.3", "127.0.0.4"], keepaliveRequests: 50)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns))
        let counter = RequestLog()
        try await withRunningPool(pool) { pool in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<16 {
                    group.addTask {
                        for number in 0..<100 {
                            try await counter.send(pool, id: "goaway-\(worker)-\(number)")
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(counter.failures.count == 0, "\(counter.failures.prefix(5))")
        #expect(counter.total == 1600)
        let ids = try backends.flatMap { try $0.accessLog().map(\.requestID) }
        #expect(ids.count == 1600, "every request reached a backend exactly once")
        #expect(Set(ids).count == 1600)
    }

    @Test func nameWithoutRecordsFailsWithAnErrorSayingSo() async throws {
        let (backends, dns, port) = try await fleet(["127.0.0.2"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let missing = "missing.demo.svc.cluster.local"
        let pool = try LBPool(target: "http://\(missing):\(port)", configuration: testConfiguration(dns: dns))
        try await withRunningPool(pool) { pool in
            let error = await #expect(throws: LBPoolError.self) {
                _ = try await pool.execute(get(id: "missing"), timeout: .seconds(5))
            }
            #expect(error?.code == .noAddresses)
            #expect(error?.message.contains(missing) == true, "\(String(describing: error))")
        }
    }
}

/// What concurrent test requests saw, for assertions afterwards.
final class RequestLog: @unchecked Sendable {
    // @unchecked: every access to `entries`, `failures` and `stopped` holds `lock`.
    struct Entry {
        var started: ContinuousClock.Instant
        var finished: ContinuousClock.Instant
        var address: String
    }

    private let lock = NSLock()
    private var entries: [Entry] = []
    private var failureList: [String] = []
    private var stopped = false
    private var counter = 0

    var failures: [String] { lock.withLock { failureList } }
    var total: Int { lock.withLock { entries.count + failureList.count } }

    func stop() { lock.withLock { stopped = true } }

    func send(_ pool: LBPool, id: String) async throws {
        let started = ContinuousClock.now
        do {
            let response = try await pool.execute(get(id: id))
            let entry = Entry(started: started, finished: .now, address: response.servedBy.ip)
            lock.withLock {
                if response.head.status == .ok { entries.append(entry) } else { failureList.append("HTTP \(response.head.status.code)") }
            }
        } catch {
            lock.withLock { failureList.append("\(error)") }
        }
    }

    /// Keeps `workers` request loops going against `pool` while `body` runs, then stops them
    /// and waits for their last requests.
    func sending<Result: Sendable>(to pool: LBPool, workers: Int, during body: () async throws -> Result) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { load in
            for worker in 0..<workers {
                load.addTask { try await self.sendUntilStopped(pool, worker: worker) }
            }
            defer { stop() }
            return try await body()
        }
    }

    private func sendUntilStopped(_ pool: LBPool, worker: Int) async throws {
        while !lock.withLock({ stopped }) {
            let number = lock.withLock {
                counter += 1; return counter
            }
            try await send(pool, id: "w\(worker)-\(number)")
        }
    }

    func firstSuccess(on address: String) -> ContinuousClock.Instant? {
        lock.withLock { entries.filter { $0.address == address }.map(\.finished).min() }
    }

    func lastStart(on address: String) -> ContinuousClock.Instant? {
        lock.withLock { entries.filter { $0.address == address }.map(\.started).max() }
    }

    func successes(on address: String, after instant: ContinuousClock.Instant) -> Int {
        lock.withLock { entries.filter { $0.address == address && $0.started > instant }.count }
    }
}
