import Foundation
import HTTPTypes
import LBPool
import NIOCore
import NIOSSL
import NIOPosix
import Testing

/// The pool over HTTP/1.1 (`httpVersion = .http1`) against real nginx backends that speak only
/// HTTP/1.1, behind dnsmasq, Python's http.server (HTTP/1.0), and a scripted server for the
/// keep-alive race and for a server that never answers.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HTTP1IntegrationTests {
    func http1Fleet(_ ips: [String], keepaliveRequests: Int = 1_000_000, extra: String = "") async throws -> ([NginxBackend], DNSServer, Int) {
        try await startFleet(ips) {
            try NginxBackend(ip: $0, port: $1, keepaliveRequests: keepaliveRequests, http1Only: true, extraServerConfig: extra)
        }
    }

    func http1Configuration(dns: DNSServer?) -> LBPool.Configuration {
        var configuration = testConfiguration(dns: dns)
        configuration.httpVersion = .http1
        return configuration
    }

    @Test func sequentialRequestsSplitExactlyEvenlyOverKeptAliveConnections() async throws {
        let (backends, dns, port) = try await http1Fleet(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: http1Configuration(dns: dns))
        let served = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            var served: [String: Int] = [:]
            for number in 0..<900 {
                let response = try await pool.execute(get(id: "h1-even-\(number)"))
                #expect(response.head.status == .ok)
                #expect(String(buffer: response.body) == response.servedBy.ip + "\n")
                served[response.servedBy.ip, default: 0] += 1
            }
            return served
        }
        #expect(served == ["127.0.0.2": 300, "127.0.0.3": 300, "127.0.0.4": 300])
        for backend in backends {
            let log = try backend.accessLog()
            #expect(log.count == 300, "\(backend.ip) logged \(log.count) requests")
            // One at a time, so the one warm connection carried them all: kept alive.
            #expect(Set(log.map(\.connection)).count == 1, "\(backend.ip) saw connections \(Set(log.map(\.connection)))")
            #expect(log.allSatisfy { $0.protocol == "HTTP/1.1" })
        }
    }

    @Test func concurrentRequestsOpenMoreConnectionsUpToTheLimit() async throws {
        let (backends, dns, port) = try await http1Fleet(["127.0.0.2", "127.0.0.3"])
        defer { withExtendedLifetime((backends, dns)) {} }
        var configuration = http1Configuration(dns: dns)
        configuration.maxConnections = 5
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: configuration)
        let succeeded = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 2, timeout: .seconds(10))
            return try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<16 {
                    group.addTask {
                        var ok = 0
                        for number in 0..<100 where try await pool.execute(get(id: "h1-c-\(worker)-\(number)")).head.status == .ok {
                            ok += 1
                        }
                        return ok
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        #expect(succeeded == 1600)
        for backend in backends {
            let connections = Set(try backend.accessLog().map(\.connection))
            // 16 concurrent requests over two addresses want 8 connections each: more than the
            // one warm connection, at most the limit.
            #expect(connections.count > 1 && connections.count <= 5, "\(backend.ip): \(connections.count) connections")
        }
    }

    @Test func connectionCloseAfterEveryFiftyRequestsLosesAndRepeatsNoPost() async throws {
        let (backends, dns, port) = try await http1Fleet(["127.0.0.2", "127.0.0.3", "127.0.0.4"], keepaliveRequests: 50)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: http1Configuration(dns: dns))
        let total = 20_000
        let (succeeded, events) = try await withRunningPool(pool) { pool in
            let stream = pool.events()
            let watcher = Task {
                var seen: [PoolEvent] = []
                for await event in stream { seen.append(event) }
                return seen
            }
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            let succeeded = try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<20 {
                    group.addTask {
                        var ok = 0
                        for number in stride(from: worker, to: total, by: 20) {
                            var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/")
                            request.headerFields[HTTPField.Name("x-request-id")!] = "post-\(number)"
                            let response = try await pool.execute(request, body: .bytes(ByteBuffer(string: "n=\(number)")))
                            if response.head.status == .ok { ok += 1 }
                        }
                        return ok
                    }
                }
                return try await group.reduce(0, +)
            }
            // Iterating an AsyncStream ends when its task is cancelled.
            watcher.cancel()
            return (succeeded, await watcher.value)
        }
        #expect(succeeded == total)
        // Processed exactly once each: every id in the access logs, none twice.
        let ids = try backends.flatMap { try $0.accessLog().filter { $0.method == "POST" }.map(\.requestID) }
        #expect(ids.count == total, "\(ids.count) POSTs logged for \(total) sent")
        #expect(Set(ids).count == total, "\(ids.count - Set(ids).count) POSTs processed twice")
        // nginx closed each connection after its 50th response (the ones still open at the end
        // served fewer); the pool heard each close as a drain.
        var closedByServer = 0
        for backend in backends {
            let perConnection = Dictionary(grouping: try backend.accessLog(), by: \.connection)
            #expect(perConnection.values.allSatisfy { $0.count <= 50 })
            closedByServer += perConnection.values.filter { $0.count == 50 }.count
        }
        let closings = events.filter {
            if case .draining(.serverClosing(let detail)) = $0.kind { return detail == "Connection: close" }
            return false
        }
        #expect(closedByServer >= (total - 20 * 50) / 50)
        #expect(closings.count == closedByServer, "\(closings.count) drains on Connection: close, \(closedByServer) connections closed by nginx")
    }

    @Test func aServerThatClosesAnIdleConnectionIsReplacedAndNothingFails() async throws {
        // nginx closes connections idle for more than a second.
        let (backends, dns, port) = try await http1Fleet(["127.0.0.2"], extra: "keepalive_timeout 1s;")
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: http1Configuration(dns: dns))
        try await withRunningPool(pool) { pool in
            let stream = pool.events()
            try await pool.waitUntilReady(timeout: .seconds(10))
            #expect(try await pool.execute(get(id: "idle-1")).head.status == .ok)
            var drained: PoolEvent?
            var readyAfter = false
            for await event in stream {
                if case .draining(.serverClosing(let detail)) = event.kind, detail == "the server closed the idle connection" {
                    drained = event
                } else if drained != nil, case .ready = event.kind {
                    readyAfter = true
                    break
                }
            }
            #expect(drained != nil, "no drain on the idle close")
            #expect(readyAfter, "no replacement connection")
            #expect(try await pool.execute(get(id: "idle-2")).head.status == .ok)
        }
        let log = try backends[0].accessLog()
        #expect(log.count == 2 && Set(log.map(\.connection)).count == 2, "\(log)")
    }

    @Test func aPostLostToTheKeepAliveRaceIsSentAgainOnAnotherConnection() async throws {
        // A server that answers the first request of each connection and closes it, unanswered,
        // when a second one arrives: what a server's idle close does to a request already on its way.
        let server = try await ScriptedHTTP1Server.start(.dropSecondRequest)
        defer { Task { try? await server.close() } }
        var configuration = http1Configuration(dns: nil)
        // Any retry would have to come from the unprocessed rule: no policy retries a POST.
        configuration.retryPolicy.maxAttempts = 1
        let pool = try LBPool(target: "http://127.0.0.1:\(server.port)", configuration: configuration)
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(10))
            for number in 0..<3 {
                let request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/")
                let response = try await pool.execute(request, body: .bytes(ByteBuffer(string: "post \(number)")))
                #expect(response.head.status == .ok)
                #expect(String(buffer: response.body) == "post \(number)")
                // Each later one was lost once on the reused connection and sent again as
                // unprocessed, which is not an attempt of the retry policy.
                #expect(response.attempts == 1, "request \(number): \(response.attempts) attempts")
            }
        }
        // Every POST answered once; every second request on a connection dropped unanswered.
        #expect(server.answered == ["post 0", "post 1", "post 2"])
        #expect(server.dropped == 2)
    }

    @Test func aRequestWithoutAnswerFailsAtItsDeadlineAndItsConnectionIsClosed() async throws {
        let server = try await ScriptedHTTP1Server.start(.neverAnswer)
        defer { Task { try? await server.close() } }
        let pool = try LBPool(target: "http://127.0.0.1:\(server.port)", configuration: http1Configuration(dns: nil))
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(10))
            let started = ContinuousClock.now
            let error = await #expect(throws: LBPoolError.self) {
                try await pool.execute(get(id: "hang"), timeout: .milliseconds(300))
            }
            #expect(error?.code == .deadlineExceeded, "\(String(describing: error))")
            #expect(ContinuousClock.now - started < .seconds(3))
            // HTTP/1.1 cannot cancel one request: the connection under it closes.
            try await waitFor("the connection of the unanswered request to close") { server.closedConnections >= 1 }
        }
        #expect(server.dropped >= 1)
    }

    @Test func anHTTP10ServerClosesEachConnectionAndEveryRequestSucceeds() async throws {
        // Python's http.server answers in HTTP/1.0 and closes the connection after each response.
        let ips = ["127.0.0.2", "127.0.0.3"]
        let port = try freePort(alsoOn: ips)
        let python = try requireTool("python3", package: "python3")
        let folder = try makeWorkFolder("http10")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("hello\n".utf8).write(to: folder.appendingPathComponent("index.html"))
        let servers = try ips.map { ip in
            try ChildProcess(
                name: "http.server \(ip)", path: python,
                arguments: ["-m", "http.server", "--bind", ip, "--directory", folder.path, "\(port)"],
                log: folder.appendingPathComponent("server-\(ip).log"))
        }
        defer { withExtendedLifetime(servers) {} }
        for ip in ips { try await waitFor("http.server on \(ip)") { isListening(ip, port) } }
        let dns = try DNSServer(ttl: 5)
        try dns.setRecords([serviceName: ips])
        try await dns.start()
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: http1Configuration(dns: dns))
        let (served, drains) = try await withRunningPool(pool) { pool in
            let stream = pool.events()
            let watcher = Task {
                var drains = 0
                for await event in stream {
                    if case .draining(.serverClosing("an HTTP/1.0 response without keep-alive")) = event.kind { drains += 1 }
                }
                return drains
            }
            try await pool.waitUntilReady(minimumAddresses: 2, timeout: .seconds(10))
            var served: [String: Int] = [:]
            for number in 0..<40 {
                let response = try await pool.execute(get("/index.html", id: "old-\(number)"))
                #expect(response.head.status == .ok)
                #expect(String(buffer: response.body) == "hello\n")
                served[response.servedBy.ip, default: 0] += 1
            }
            watcher.cancel()
            return (served, await watcher.value)
        }
        #expect(served == ["127.0.0.2": 20, "127.0.0.3": 20])
        // Every response closed its connection, and the pool heard each as a drain.
        #expect(drains == 40, "\(drains) drains for 40 HTTP/1.0 responses")
    }

    @Test func negotiationSpeaksWhatEachServerChoseInOnePool() async throws {
        // One pod offers h2 and HTTP/1.1 by ALPN, the other only HTTP/1.1.
        let folder = try makeWorkFolder("negotiate")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (ca, certificate, key) = try TLSIntegrationTests().makeCertificates(in: folder)
        let tls = NginxBackend.TLS(certificate: certificate, key: key)
        let port = try freePort(alsoOn: ["127.0.0.2", "127.0.0.3"])
        let h2 = try NginxBackend(ip: "127.0.0.2", port: port, tls: tls)
        let h1 = try NginxBackend(ip: "127.0.0.3", port: port, tls: tls, http1Only: true)
        try await h2.start()
        try await h1.start()
        let dns = try DNSServer(ttl: 5)
        try dns.setRecords([TLSIntegrationTests.name: ["127.0.0.2", "127.0.0.3"]])
        try await dns.start()
        var configuration = testConfiguration(dns: dns, httpVersion: .negotiated)
        var clientTLS = TLSConfiguration.makeClientConfiguration()
        clientTLS.trustRoots = .file(ca)
        configuration.tls = clientTLS
        let pool = try LBPool(target: "https://\(TLSIntegrationTests.name):\(port)", configuration: configuration)
        let served = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 2, timeout: .seconds(10))
            var served: [String: Int] = [:]
            for number in 0..<200 {
                let response = try await pool.execute(get(id: "alpn-\(number)"))
                #expect(response.head.status == .ok)
                served[response.servedBy.ip, default: 0] += 1
            }
            return served
        }
        #expect(served == ["127.0.0.2": 100, "127.0.0.3": 100])
        #expect(try h2.accessLog().map(\.protocol) == Array(repeating: "HTTP/2.0", count: 100))
        #expect(try h1.accessLog().map(\.protocol) == Array(repeating: "HTTP/1.1", count: 100))
    }

    @Test func gracefulShutdownLetsTheOpenResponseFinishAndRefusesNewRequests() async throws {
        // nginx's /stream sends 2 MiB at 256 KiB/s: eight seconds of one response.
        let (backends, dns, port) = try await http1Fleet(["127.0.0.2"])
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: http1Configuration(dns: dns))
        let events = pool.events()
        let running = Task { try await pool.run() }
        try await pool.waitUntilReady(timeout: .seconds(10))
        let (bytes, reason) = try await pool.execute(get("/stream", id: "long")) { response -> (Int, ConnectionCloseReason?) in
            var iterator = response.body.makeAsyncIterator()
            var bytes = 0
            while bytes < 64 << 10, let chunk = try await iterator.next() { bytes += chunk.readableBytes }
            pool.shutDown()
            for await event in events where event.kind == .draining(.poolShutdown) { break }
            let refused = await #expect(throws: LBPoolError.self) { _ = try await pool.execute(get(id: "after-shutdown")) }
            #expect(refused?.code == .shutdown)
            while let chunk = try await iterator.next() { bytes += chunk.readableBytes }
            return (bytes, response.connectionClosing.reason)
        }
        #expect(bytes == 2 << 20, "the open response arrived whole")
        #expect(reason == .poolShutdown)
        // run() returns by itself once the drained connection closed.
        try await running.value
    }

    @Test func plainTasksSpreadTheirConnectionsOverTheEventLoops() async throws {
        let (backends, dns, port) = try await http1Fleet(["127.0.0.2"])
        defer { withExtendedLifetime((backends, dns)) {} }
        var configuration = http1Configuration(dns: dns)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        configuration.eventLoopGroup = group
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: configuration)
        let loops = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(10))
            // Tasks on the global executor, none on the pool's loops.
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for worker in 0..<8 {
                    tasks.addTask { for number in 0..<100 { _ = try await pool.execute(get(id: "plain-\(worker)-\(number)")) } }
                }
                try await tasks.waitForAll()
            }
            return pool.snapshot().addresses.flatMap(\.connections).map(\.eventLoop)
        }
        try await group.shutdownGracefully()
        // Over HTTP/1.1 the extra connections alternate between the loops, the warm one on the home loop.
        let perLoop = Dictionary(grouping: loops, by: { $0 }).mapValues(\.count)
        #expect(perLoop.keys.sorted() == [0, 1], "connections per loop: \(perLoop)")
        #expect(abs((perLoop[0] ?? 0) - (perLoop[1] ?? 0)) <= 1, "connections per loop: \(perLoop)")
    }
}
