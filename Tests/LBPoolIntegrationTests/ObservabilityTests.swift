import HTTPTypes
import LBPool
import MetricsTestKit
import Testing

/// Logs and metrics for a GOAWAY, a rotation, a DNS change and failed requests, against nginx and dnsmasq.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ObservabilityTests {
    static let name = "api.demo.svc.cluster.local"

    func fleet(_ ips: [String], keepaliveRequests: Int = 1_000_000, ttl: Int = 5) async throws -> ([NginxBackend], DNSServer, Int) {
        try await startFleet(ips, ttl: ttl, alsoFree: ["127.0.0.4"]) {
            try NginxBackend(ip: $0, port: $1, keepaliveRequests: keepaliveRequests)
        }
    }

    @Test func goAwayIsLoggedAndCounted() async throws {
        let (backends, dns, port) = try await fleet(["127.0.0.2"], keepaliveRequests: 5)
        defer { withExtendedLifetime((backends, dns)) {} }
        let records = LogRecords()
        let metrics = TestMetrics()
        let pool = try LBPool(
            target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns),
            logger: records.logger(), metrics: metrics)
        try await withRunningPool(pool) { pool in
            for number in 0..<12 { _ = try await pool.execute(get(id: "goaway-\(number)")) }
        }
        let goAways = records.all.filter { $0.message == "GOAWAY: draining" }
        #expect(goAways.count >= 2)
        #expect(
            goAways.allSatisfy { $0.metadata["code"] == "NO_ERROR" && $0.metadata["last_stream_id"] == "9" && $0.metadata["address"] == "127.0.0.2:\(port)" },
            "\(goAways.map(\.metadata))")
        #expect(try metrics.expectCounter("lbpool_goaways_total", [("code", "NO_ERROR")]).totalValue >= 2)
        #expect(try metrics.expectCounter("lbpool_requests_total", [("outcome", "success")]).totalValue == 12)
        #expect(try metrics.expectCounter("lbpool_picks_total").totalValue >= 12)
        #expect(records.all.contains { $0.message.hasPrefix("subconnection ready") && $0.metadata["subconnection"] != nil })
    }

    @Test func requestDurationsAreRecordedUnderOpenTelemetrysNameAndAttributes() async throws {
        let (backends, dns, port) = try await fleet(["127.0.0.2", "127.0.0.3"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let metrics = TestMetrics()
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns), metrics: metrics)
        let clock = ContinuousClock()
        let elapsed = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 2, timeout: .seconds(10))
            return try await clock.measure {
                for number in 0..<6 { _ = try await pool.execute(get(id: "timed-\(number)")) }
            }
        }
        let recorder = try metrics.expectRecorder(
            "http.client.request.duration",
            [
                ("http.request.method", "GET"), ("server.address", Self.name), ("server.port", "\(port)"), ("url.scheme", "http"),
                ("http.response.status_code", "200"),
            ])
        #expect(recorder.aggregate, "a histogram")
        #expect(recorder.values.count == 6)
        // In seconds: every request took more than nothing and less than the six together.
        #expect(recorder.values.allSatisfy { $0 > 0 && $0 <= Double(elapsed.components.seconds) + 1 })
        #expect(recorder.values.reduce(0, +) <= Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        #expect(metrics.recorders.filter { $0.label == "http.client.request.duration" }.count == 1, "no address split by default")
    }

    @Test func requestDurationsSplitByAddressWhenAskedAndNameTheErrorOfAFailure() async throws {
        let (backends, dns, port) = try await fleet(["127.0.0.2", "127.0.0.3"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let metrics = TestMetrics()
        var configuration = testConfiguration(dns: dns)
        configuration.requestDurationByAddress = true
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: configuration, metrics: metrics)
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 2, timeout: .seconds(10))
            for number in 0..<6 { _ = try await pool.execute(get(id: "split-\(number)")) }
            // A request with a timeout too short for any answer fails with deadlineExceeded.
            await #expect(throws: LBPoolError.self) {
                try await pool.execute(get(id: "late"), timeout: .nanoseconds(1))
            }
        }
        let base = [("http.request.method", "GET"), ("server.address", Self.name), ("server.port", "\(port)"), ("url.scheme", "http")]
        for ip in ["127.0.0.2", "127.0.0.3"] {
            let recorder = try metrics.expectRecorder(
                "http.client.request.duration", base + [("http.response.status_code", "200"), ("network.peer.address", ip)])
            #expect(recorder.values.count == 3, "round robin: half the requests each")
        }
        let failed = metrics.recorders.filter { recorder in
            recorder.label == "http.client.request.duration" && recorder.dimensions.contains { $0 == ("error.type", "deadlineExceeded") }
        }
        #expect(failed.count == 1)
        #expect(failed.first?.values.count == 1)
    }

    @Test func openConnectionsAreCountedIdleOrActiveUnderOpenTelemetrysName() async throws {
        let (backends, dns, port) = try await fleet(["127.0.0.2", "127.0.0.3"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let metrics = TestMetrics()
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns), metrics: metrics)
        func gauge(_ ip: String, _ state: String) throws -> Double? {
            try metrics.expectGauge(
                "http.client.open_connections",
                [
                    ("http.connection.state", state), ("server.address", Self.name), ("server.port", "\(port)"), ("url.scheme", "http"),
                    ("network.peer.address", ip), ("network.peer.port", "\(port)"),
                ]
            ).lastValue
        }
        let (whileStreaming, afterwards) = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 2, timeout: .seconds(10))
            for ip in ["127.0.0.2", "127.0.0.3"] {
                #expect(try gauge(ip, "idle") == 1 && gauge(ip, "active") == 0, "\(ip): ready and unused")
            }
            // A long response (2 MiB at 256 KiB/s): its connection is active while it is read.
            let (during, ip) = try await pool.execute(get("/stream", id: "long")) { response in
                ([try gauge(response.servedBy.ip, "active"), try gauge(response.servedBy.ip, "idle")], response.servedBy.ip)
            }
            return (during, [try gauge(ip, "active"), try gauge(ip, "idle")])
        }
        #expect(whileStreaming == [1, 0], "active while the request is in flight")
        #expect(afterwards == [0, 1], "idle again once it ended")
    }

    @Test func rotationIsLoggedAndCounted() async throws {
        let (backends, dns, port) = try await fleet(["127.0.0.2"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let records = LogRecords()
        let metrics = TestMetrics()
        var configuration = testConfiguration(dns: dns)
        configuration.maxConnectionLifetime = .milliseconds(300)
        let pool = try LBPool(
            target: "http://\(Self.name):\(port)", configuration: configuration,
            logger: records.logger(), metrics: metrics)
        let events = pool.events()
        try await withRunningPool(pool) { _ in
            var rotations = 0
            for await event in events where event.kind == .draining(.lifetimeExpired) {
                rotations += 1
                if rotations == 2 { break }
            }
        }
        #expect(try metrics.expectCounter("lbpool_rotations_total").totalValue >= 2)
        #expect(records.all.filter { $0.message.hasPrefix("rotation") }.count >= 2)
    }

    @Test func dnsChangesUpdateTheAddressMetricsAndDestroyRemovedOnes() async throws {
        let (backends, dns, port) = try await fleet(["127.0.0.2", "127.0.0.3"], ttl: 1)
        defer { withExtendedLifetime((backends, dns)) {} }
        let added = try NginxBackend(ip: "127.0.0.4", port: port)
        defer { withExtendedLifetime(added) {} }
        try await added.start()
        let records = LogRecords()
        let metrics = TestMetrics()
        let pool = try LBPool(
            target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns),
            logger: records.logger(), metrics: metrics)
        let events = pool.events()
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 2, timeout: .seconds(10))
            #expect(try metrics.expectGauge("lbpool_addresses").lastValue == 2)
            let ready = try metrics.expectGauge("lbpool_connections", [("address", "127.0.0.2:\(port)"), ("state", "ready")])
            #expect(ready.lastValue == 1)

            try dns.setRecords([Self.name: ["127.0.0.3", "127.0.0.4"]])
            dns.reload()
            var seen: Set<String> = []
            for await event in events {
                if event.kind == .ready, event.address.ip == "127.0.0.4" { seen.insert("added ready") }
                if event.kind == .closed(.addressRemoved) { seen.insert("removed closed") }
                if seen.count == 2 { break }
            }
            let snapshot = pool.snapshot()
            #expect(snapshot.addresses.map(\.address.ip) == ["127.0.0.3", "127.0.0.4"], "\(snapshot)")
            #expect(snapshot.addresses.allSatisfy { $0.connections.contains { $0.state == .ready } }, "\(snapshot)")
        }
        #expect(try metrics.expectGauge("lbpool_addresses").values.contains(2))
        #expect(try metrics.expectGauge("lbpool_connections", [("address", "127.0.0.4:\(port)"), ("state", "ready")]).values.contains(1))
        #expect(throws: (any Error).self, "the removed address's gauges are destroyed") {
            try metrics.expectGauge("lbpool_connections", [("address", "127.0.0.2:\(port)"), ("state", "ready")])
        }
        #expect(try metrics.expectCounter("lbpool_dns_refreshes_total").totalValue >= 2)
        #expect(records.all.contains { $0.message == "resolved" && $0.metadata["addresses"]?.contains("127.0.0.4") == true })
    }

    @Test func aFailedRequestIsCountedForTheAddressOfItsLastAttempt() async throws {
        let (backends, dns, port) = try await fleet(["127.0.0.2", "127.0.0.3"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let metrics = TestMetrics()
        var configuration = testConfiguration(dns: dns)
        // nginx answers with its address and a newline, ten bytes: each answer is too large.
        configuration.maxCollectedBodyBytes = 4
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: configuration, metrics: metrics)
        let failedAt = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 2, timeout: .seconds(10))
            var failedAt: [String: Int] = [:]
            for number in 0..<6 {
                do {
                    let response = try await pool.execute(get(id: "too-large-\(number)"))
                    Issue.record("a body of \(response.body.readableBytes) bytes was collected")
                } catch let error as LBPoolError {
                    #expect(error.code == .responseTooLarge, "\(error)")
                    failedAt[error.address?.description ?? "no address", default: 0] += 1
                }
            }
            return failedAt
        }
        #expect(failedAt == ["127.0.0.2:\(port)": 3, "127.0.0.3:\(port)": 3])
        for (address, count) in failedAt {
            let counter = try metrics.expectCounter("lbpool_request_failures_total", [("address", address), ("code", "responseTooLarge")])
            #expect(counter.totalValue == count, "\(address)")
        }
        #expect(try metrics.expectCounter("lbpool_requests_total", [("outcome", "failure")]).totalValue == 6)
    }
}
