import Foundation
import HTTPTypes
import LBPool
import NIOCore
import Testing

/// Retries and the retry budget against real nginx backends that answer 503.
@Suite(.serialized, .timeLimit(.minutes(3))) struct RetryIntegrationTests {
    static let name = "api.demo.svc.cluster.local"

    /// `ips` as backends on one port, the ones in `failing` answering 503; DNS for all of them.
    func fleet(_ ips: [String], failing: Set<String>) async throws -> ([NginxBackend], DNSServer, Int) {
        try await startFleet(ips, ttl: 30) { try NginxBackend(ip: $0, port: $1, status: failing.contains($0) ? 503 : 200) }
    }

    /// Sends `count` requests from `concurrency` workers; returns (status 200 count, elapsed).
    func load(_ pool: LBPool, count: Int, concurrency: Int, makeRequest: @escaping @Sendable (Int) -> HTTPRequest) async -> (ok: Int, elapsed: Duration) {
        let start = ContinuousClock.now
        let next = TicketCounter()
        let ok = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var ok = 0
                    while true {
                        let number = next.take()
                        guard number < count else { return ok }
                        if let response = try? await pool.execute(makeRequest(number)), response.head.status == .ok { ok += 1 }
                    }
                }
            }
            return await group.reduce(0, +)
        }
        return (ok, ContinuousClock.now - start)
    }

    @Test func totalOutageStaysWithinTheRetryBudget() async throws {
        let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        let (backends, dns, port) = try await fleet(ips, failing: Set(ips))
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns))
        let (ok, elapsed) = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(10))
            return await load(pool, count: 3000, concurrency: 16) { get(id: "outage-\($0)") }
        }
        #expect(ok == 0)
        let attempts = try backends.reduce(0) { $0 + (try $1.accessLog().count) }
        // 3000 first attempts + 20% + 10/s × (elapsed + 10 s window)
        let bound = 3000 + 600 + Int((10 * (elapsed.seconds + 10)).rounded(.up))
        #expect(attempts >= 3000)
        #expect(attempts <= bound, "\(attempts) attempts for 3000 requests in \(elapsed), bound \(bound)")
        #expect(attempts > 3000, "some retries happened")
    }

    @Test func partialOutageIsInvisibleToCallers() async throws {
        let ips = (2...11).map { "127.0.0.\($0)" }
        let (backends, dns, port) = try await fleet(ips, failing: ["127.0.0.7"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns))
        let (ok, _) = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 10, timeout: .seconds(10))
            return await load(pool, count: 5000, concurrency: 16) { get(id: "partial-\($0)") }
        }
        #expect(ok == 5000)
        let failing = try #require(backends.first { $0.ip == "127.0.0.7" })
        #expect(try failing.accessLog().count > 0, "the failing address was tried")
    }

    @Test func postIsRetriedOnlyWhenMarkedIdempotent() async throws {
        let ips = ["127.0.0.2", "127.0.0.3"]
        let (backends, dns, port) = try await fleet(ips, failing: Set(ips))
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns))
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(10))
            for number in 0..<20 {
                var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/")
                request.headerFields[HTTPField.Name("x-request-id")!] = "plain-\(number)"
                let response = try await pool.execute(request, body: .bytes(ByteBuffer(string: "x")))
                #expect(response.head.status == .serviceUnavailable)
                #expect(response.attempts == 1)
                guard case .notRetryable = response.retryStop else {
                    Issue.record("expected notRetryable, got \(String(describing: response.retryStop))")
                    continue
                }
            }
            for number in 0..<20 {
                var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/")
                request.headerFields[HTTPField.Name("x-request-id")!] = "marked-\(number)"
                let response = try await pool.execute(request, body: .bytes(ByteBuffer(string: "x")), options: .init(idempotent: true))
                #expect(response.head.status == .serviceUnavailable)
                #expect(response.attempts == 3)
                #expect(response.retryStop == .maxAttempts(3))
            }
            // Idempotent, but its body was a stream that is gone once sent.
            var put = HTTPRequest(method: .put, scheme: nil, authority: nil, path: "/")
            put.headerFields[HTTPField.Name("x-request-id")!] = "streamed-put"
            let chunks = AsyncStream<ByteBuffer> { continuation in
                continuation.yield(ByteBuffer(string: "streamed"))
                continuation.finish()
            }
            let response = try await pool.execute(put, body: .stream(chunks))
            #expect(response.head.status == .serviceUnavailable)
            #expect(response.retryStop == .notRetryable("the streamed request body was already read"))
        }
        let log = try backends.flatMap { try $0.accessLog() }
        let perID = Dictionary(grouping: log, by: \.requestID).mapValues(\.count)
        #expect((0..<20).allSatisfy { perID["plain-\($0)"] == 1 }, "a POST answered 503 was sent once")
        #expect(perID["streamed-put"] == 1, "a streamed body is sent once")
        #expect((0..<20).allSatisfy { perID["marked-\($0)"] == 3 }, "a POST marked idempotent was sent three times")
    }
}

extension Duration {
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
