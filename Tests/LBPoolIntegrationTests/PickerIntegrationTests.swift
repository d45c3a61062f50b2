import HTTPTypes
import LBPool
import Testing

/// Pickers against real nginx backends, one of them slow.
@Suite(.serialized, .timeLimit(.minutes(3))) struct PickerIntegrationTests {
    static let name = "api.demo.svc.cluster.local"
    static let slow = "127.0.0.3"

    /// Share of `requests` GETs at concurrency 32 that the slow backend served, and what
    /// explains it when it is off: requests per address and the pool's events.
    func slowShare(picker: LBPool.PickerChoice, requests: Int) async throws -> (share: Double, explanation: String) {
        // 64 KiB each; the slow one at 128 KiB/s, half a second per response.
        let (backends, dns, port) = try await startFleet(["127.0.0.2", Self.slow, "127.0.0.4"], ttl: 30) {
            try NginxBackend(ip: $0, port: $1, bodyBytes: 64 << 10, limitRate: $0 == Self.slow ? "128k" : nil)
        }
        defer { withExtendedLifetime((backends, dns)) {} }
        var configuration = testConfiguration(dns: dns)
        configuration.picker = picker
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: configuration)
        let events = pool.events()
        let recorded = Task { await events.reduce(into: [String]()) { $0.append("\($1)") } }
        let served = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            let next = TicketCounter()
            return try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<32 {
                    group.addTask {
                        var served: [String] = []
                        while next.take() < requests {
                            let response = try await pool.execute(get(id: "slow"))
                            #expect(response.body.readableBytes == 64 << 10)
                            served.append(response.servedBy.ip)
                        }
                        return served
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }
        #expect(served.count == requests)
        let perAddress = Dictionary(grouping: served, by: { $0 }).mapValues(\.count)
        let share = Double(served.filter { $0 == Self.slow }.count) / Double(served.count)
        return (share, "served \(perAddress.sorted { $0.key < $1.key }); events: \(await recorded.value)")
    }

    @Test func powerOfTwoChoicesSendsLittleToASlowBackend() async throws {
        let (share, explanation) = try await slowShare(picker: .powerOfTwoChoices, requests: 600)
        #expect(share < 0.15, "the slow backend served \(share); \(explanation)")
    }

    @Test func roundRobinSendsTheSlowBackendAThird() async throws {
        let (share, explanation) = try await slowShare(picker: .roundRobin, requests: 300)
        #expect(abs(share - 1.0 / 3) < 0.05, "the slow backend served \(share); \(explanation)")
    }
}

/// Passive health against a backend that crashes and comes back.
@Suite(.serialized, .timeLimit(.minutes(3))) struct OutlierIntegrationTests {
    static let name = "api.demo.svc.cluster.local"

    @Test(arguments: bothHTTPVersions)
    func crashedBackendIsEjectedAndReturnsWithoutFailingAGet(_ httpVersion: LBPool.Configuration.HTTPVersion) async throws {
        let (backends, dns, port) = try await startFleet(["127.0.0.2", "127.0.0.3", "127.0.0.4"], ttl: 30) {
            try nginx($0, $1, for: httpVersion)
        }
        defer { withExtendedLifetime((backends, dns)) {} }
        var configuration = testConfiguration(dns: dns, httpVersion: httpVersion)
        configuration.outlierDetection?.baseEjectionTime = .seconds(1)
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: configuration)
        let events = pool.events()
        let crashed = backends[1]
        let log = RequestLog()
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            try await log.sending(to: pool, workers: 32) {
                try await waitFor("traffic") { log.total > 300 }
                await crashed.crash()
                // Ejected while down: connections to it are refused.
                for await event in events {
                    if event.address.ip == crashed.ip, case .ejected = event.kind { break }
                }
                #expect(pool.snapshot().addresses.first { $0.address.ip == crashed.ip }?.health == .ejected)
                try await crashed.start()
                let restarted = ContinuousClock.now
                try await waitFor("the restarted backend to serve again", timeout: .seconds(15)) {
                    log.successes(on: crashed.ip, after: restarted) > 20
                }
            }
        }
        #expect(log.failures.count == 0, "\(log.failures.prefix(5))")
    }
}

/// Active health checks against nginx whose /healthz the test switches.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HealthCheckIntegrationTests {
    static let name = "api.demo.svc.cluster.local"

    @Test(arguments: bothHTTPVersions)
    func failingHealthCheckTakesTheAddressOutUntilItPassesAgain(_ httpVersion: LBPool.Configuration.HTTPVersion) async throws {
        let (backends, dns, port) = try await startFleet(["127.0.0.2", "127.0.0.3", "127.0.0.4"], ttl: 30) {
            try nginx($0, $1, for: httpVersion)
        }
        defer { withExtendedLifetime((backends, dns)) {} }
        let interval = Duration.milliseconds(500)
        var configuration = testConfiguration(dns: dns, httpVersion: httpVersion)
        var check = LBPool.Configuration.HealthCheck(path: "/healthz", interval: interval)
        check.unhealthyThreshold = 1
        configuration.healthCheck = check
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: configuration)
        let events = pool.events()
        let sick = backends[2]
        let log = RequestLog()
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            try await log.sending(to: pool, workers: 8) {
                try await waitFor("every address healthy", timeout: .seconds(5)) {
                    pool.snapshot().addresses.allSatisfy { $0.checks == .healthy }
                }
                try sick.setHealthy(false)
                for await event in events where event.address.ip == sick.ip && event.kind == .health(.unhealthy) { break }
                // The picker changed before the event: a request started from here cannot pick it.
                let out = ContinuousClock.now
                let others = backends.filter { $0.ip != sick.ip }
                try await waitFor("requests on the other addresses once it was out") {
                    others.allSatisfy { log.successes(on: $0.ip, after: out) >= 20 }
                }
                #expect(log.successes(on: sick.ip, after: out) == 0, "requests started on the unhealthy address")
                #expect(pool.snapshot().addresses.first { $0.address.ip == sick.ip }?.checks == .unhealthy)

                try sick.setHealthy(true)
                let recovered = ContinuousClock.now
                try await waitFor("traffic back on \(sick.ip)", timeout: .seconds(5)) {
                    log.successes(on: sick.ip, after: recovered) > 10
                }
            }
        }
        #expect(log.failures.count == 0, "\(log.failures.prefix(5))")
    }
}
