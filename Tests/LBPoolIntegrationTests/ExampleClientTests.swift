import Foundation
import Testing

/// The example client as a user runs it: against real nginx and dnsmasq, stopped with SIGTERM.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ExampleClientTests {
    static let name = "api.demo.svc.cluster.local"

    /// The example binary, built next to the test bundle by `swift build --build-tests`.
    func clientPath() throws -> String {
        let folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let path = folder.appendingPathComponent("RoundRobinClient").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw SetupError(description: "\(path) is missing: build it with `swift build --build-tests` (make test does)")
        }
        return path
    }

    @Test func sigtermStopsCleanlyAndEventsShowTheGracefulRestart() async throws {
        let (backends, dns, port) = try await startFleet(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        defer { withExtendedLifetime((backends, dns)) {} }

        let folder = try makeWorkFolder("client")
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("stdout.json")
        let errors = folder.appendingPathComponent("stderr.log")
        let client = try ChildProcess(
            name: "RoundRobinClient", path: try clientPath(),
            arguments: [
                "http://\(Self.name):\(port)/", "--duration", "60", "--concurrency", "8",
                "--dns-server", dns.address, "--events", "--json",
            ],
            log: errors, output: output
        )
        func served() throws -> Int { try backends.reduce(0) { $0 + (try $1.accessLog().count) } }
        try await waitFor("traffic from the client") { try served() > 200 }

        // A graceful restart of one pod while the client runs.
        let restarted = backends[1]
        await restarted.quit()
        try await restarted.start()
        let before = try served()
        try await waitFor("traffic after the restart") { try served() > before + 200 }

        let stopAt = ContinuousClock.now
        client.signal(SIGTERM)
        try await waitFor("the client to exit", timeout: .seconds(10)) { !client.isRunning }
        let stopTime = ContinuousClock.now - stopAt
        #expect(stopTime < .seconds(5), "exited \(stopTime) after SIGTERM")
        #expect(client.exitCode == 0)

        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: Any]
        let requests = summary?["requests"] as? Int ?? 0
        #expect(summary?["failed"] as? Int == 0, "\(String(describing: summary))")
        #expect(requests > 400)
        #expect(requests == (summary?["succeeded"] as? Int), "every request issued finished")

        let events = try String(contentsOf: errors, encoding: .utf8)
        #expect(events.contains("event: \(restarted.ip):\(port) #"), "\(events.prefix(500))")
        #expect(
            events.split(separator: "\n").contains { $0.hasPrefix("event: \(restarted.ip):\(port) #") && $0.contains("draining: GOAWAY NO_ERROR") },
            "no draining line for the restarted address")
    }

    @Test func subsetFlagsConfineTheClientToItsSubsetAndTheEventsNameIt() async throws {
        let ips = (2...7).map { "127.0.0.\($0)" }
        let (backends, dns, port) = try await startFleet(ips)
        defer { withExtendedLifetime((backends, dns)) {} }
        let folder = try makeWorkFolder("client-subset")
        defer { try? FileManager.default.removeItem(at: folder) }
        var subsets: [Set<String>] = []
        // Which two of six a key gets depends on the addresses, and the port is drawn per run:
        // two keys agree by chance one time in fifteen, four keys all agree one time in 3375.
        for key in ["pod-w", "pod-x", "pod-y", "pod-z"] {
            let output = folder.appendingPathComponent("\(key).json")
            let errors = folder.appendingPathComponent("\(key).log")
            let client = try ChildProcess(
                name: "RoundRobinClient", path: try clientPath(),
                arguments: [
                    "http://\(Self.name):\(port)/", "--requests", "300", "--concurrency", "4", "--dns-server", dns.address,
                    "--subset-size", "2", "--subset-key", key, "--events", "--json",
                ],
                log: errors, output: output
            )
            try await waitFor("the client to finish", timeout: .seconds(30)) { !client.isRunning }
            #expect(client.exitCode == 0)
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: Any]
            #expect(summary?["failed"] as? Int == 0, "\(String(describing: summary))")
            let addresses = Set((summary?["addresses"] as? [String: Any] ?? [:]).keys)
            #expect(addresses.count == 2, "\(addresses)")
            // The events name the subset as it forms: two addresses joined, at ranks among the six.
            let joined = try String(contentsOf: errors, encoding: .utf8).split(separator: "\n").filter { $0.contains("joined the subset at rank") }
            #expect(Set(joined.map { String($0.dropFirst("event: ".count).prefix { $0 != ":" }) }) == addresses, "\(joined)")
            subsets.append(addresses)
        }
        #expect(Set(subsets).count > 1, "different keys, different subsets: \(subsets)")
    }

    @Test func traceMakesTwoSpansPerRequestAndEndsThemAll() async throws {
        let (backends, dns, port) = try await startFleet(["127.0.0.2", "127.0.0.3"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let folder = try makeWorkFolder("client-trace")
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("stdout.json")
        let client = try ChildProcess(
            name: "RoundRobinClient", path: try clientPath(),
            arguments: [
                "http://\(Self.name):\(port)/", "--requests", "500", "--concurrency", "8", "--dns-server", dns.address,
                "--trace", "--json",
            ],
            log: folder.appendingPathComponent("stderr.log"), output: output
        )
        try await waitFor("the client to finish", timeout: .seconds(30)) { !client.isRunning }
        #expect(client.exitCode == 0)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: Any]
        #expect(summary?["succeeded"] as? Int == 500, "\(String(describing: summary))")
        // One span for the request and one for its attempt, every one ended.
        #expect(summary?["spans"] as? Int == 1000, "\(String(describing: summary))")
    }

    @Test func http1FlagSpeaksHTTP1ToEveryAddress() async throws {
        let (backends, dns, port) = try await startFleet(["127.0.0.2", "127.0.0.3", "127.0.0.4"]) {
            try NginxBackend(ip: $0, port: $1, http1Only: true)
        }
        defer { withExtendedLifetime((backends, dns)) {} }
        let folder = try makeWorkFolder("client-http1")
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("stdout.json")
        let client = try ChildProcess(
            name: "RoundRobinClient", path: try clientPath(),
            arguments: [
                "http://\(Self.name):\(port)/", "--http1", "--requests", "600", "--concurrency", "6", "--dns-server", dns.address, "--json",
            ],
            log: folder.appendingPathComponent("stderr.log"), output: output
        )
        try await waitFor("the client to finish", timeout: .seconds(30)) { !client.isRunning }
        #expect(client.exitCode == 0)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: Any]
        #expect(summary?["succeeded"] as? Int == 600, "\(String(describing: summary))")
        #expect((summary?["addresses"] as? [String: Any])?.count == 3, "\(String(describing: summary))")
        for backend in backends {
            let log = try backend.accessLog()
            #expect(!log.isEmpty && log.allSatisfy { $0.protocol == "HTTP/1.1" }, "\(backend.ip)")
        }
    }

    @Test func theTimelineHasARowPerSecondPerAddressAndTheLiveLinesShowTheShares() async throws {
        let (backends, dns, port) = try await startFleet(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let folder = try makeWorkFolder("client-timeline")
        defer { try? FileManager.default.removeItem(at: folder) }
        let timeline = folder.appendingPathComponent("timeline.csv")
        let output = folder.appendingPathComponent("stdout.log")
        let errors = folder.appendingPathComponent("stderr.log")
        let client = try ChildProcess(
            name: "RoundRobinClient", path: try clientPath(),
            arguments: [
                "http://\(Self.name):\(port)/", "--duration", "2.5", "--concurrency", "4", "--dns-server", dns.address,
                "--live", "--timeline", timeline.path,
            ],
            log: errors, output: output
        )
        try await waitFor("the client to finish", timeout: .seconds(30)) { !client.isRunning }
        #expect(client.exitCode == 0)
        let lines = try String(contentsOf: timeline, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.first == "second,address,requests,failures,open_connections")
        let rows = lines.dropFirst().map { $0.split(separator: ",").map(String.init) }
        #expect(rows.allSatisfy { $0.count == 5 })
        // Two whole seconds and the partial last one, each with the three addresses.
        #expect(Set(rows.map { $0[0] }) == ["1", "2", "3"], "\(lines)")
        for second in ["1", "2"] {
            let ofSecond = rows.filter { $0[0] == second }
            #expect(Set(ofSecond.map { $0[1] }) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
            #expect(ofSecond.allSatisfy { Int($0[2]) ?? 0 > 0 && $0[3] == "0" && $0[4] == "1" }, "\(ofSecond)")
        }
        // The rows add up to what the backends served.
        let served = try backends.reduce(0) { $0 + (try $1.accessLog().count) }
        #expect(rows.reduce(0) { $0 + (Int($1[2]) ?? 0) } == served)
        // A live line per whole second, each address with its share; the connections' events inline.
        let live = try String(contentsOf: output, encoding: .utf8).split(separator: "\n")
        let perSecond = live.filter { $0.contains("req/s") }
        #expect(perSecond.count == 2, "\(live)")
        #expect(perSecond.allSatisfy { line in ["127.0.0.2", "127.0.0.3", "127.0.0.4"].allSatisfy { line.contains("\($0) ") } && line.contains("%") })
        #expect(live.contains { $0.contains("· 127.0.0.2:\(port) #") && $0.hasSuffix("ready") })
    }
}
