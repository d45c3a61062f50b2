import Foundation
import HTTPTypes
import LBPool
import NIOCore
import NIOSSL
import Testing

/// The pool against HTTP/2 servers other than nginx — Apache httpd's mod_http2, h2o, Node's http2
/// module and hypercorn — each as three pods on 127.0.0.2–4 behind dnsmasq, as the nginx tests
/// run it: the split, request bodies, large responses, a graceful stop under load, and TLS.
@Suite(.serialized, .timeLimit(.minutes(3))) struct InteropTests {
    static let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]

    func post(id: String) -> HTTPRequest {
        var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/upload")
        request.headerFields[HTTPField.Name("x-request-id")!] = id
        return request
    }

    /// What `backend` logged for requests whose id starts with `prefix`, once it logged
    /// `count` of them (Apache and h2o write their access log just after the response).
    func logged(_ backend: InteropBackend, prefix: String, count: Int) async throws -> [InteropLoggedRequest] {
        var entries: [InteropLoggedRequest] = []
        try await waitFor("\(count) '\(prefix)' requests in the log of \(backend.server) on \(backend.ip)", timeout: .seconds(5)) {
            entries = try backend.requestLog().filter { $0.requestID.hasPrefix(prefix) }
            return entries.count >= count
        }
        return entries
    }

    /// `count` sequential `GET /`s; checks each body names the address that served it and
    /// returns the request ids each address served.
    func sequentialGETs(_ pool: LBPool, count: Int, prefix: String) async throws -> [String: Set<String>] {
        try await pool.waitUntilReady(minimumAddresses: Self.ips.count, timeout: .seconds(10))
        var served: [String: Set<String>] = [:]
        for number in 0..<count {
            let id = "\(prefix)-\(number)"
            let response = try await pool.execute(get(id: id))
            #expect(response.head.status == .ok)
            #expect(String(buffer: response.body) == response.servedBy.ip + "\n")
            served[response.servedBy.ip, default: []].insert(id)
        }
        return served
    }

    /// Exactly a third of 300 sequential requests on each address, and each backend's log holds
    /// exactly the requests the pool says it served.
    func expectExactSplit(_ served: [String: Set<String>], backends: [InteropBackend], prefix: String) async throws {
        #expect(served.mapValues(\.count) == ["127.0.0.2": 100, "127.0.0.3": 100, "127.0.0.4": 100])
        for backend in backends {
            let ids = served[backend.ip, default: []]
            let log = try await logged(backend, prefix: prefix, count: ids.count)
            #expect(log.count == ids.count, "\(backend.server) on \(backend.ip) logged \(log.count) requests, served \(ids.count)")
            #expect(Set(log.map(\.requestID)) == ids, "\(backend.ip)")
            #expect(log.allSatisfy { $0.method == "GET" && $0.path == "/" })
        }
    }

    @Test(arguments: InteropServer.allCases)
    func sequentialRequestsSplitExactlyEvenly(_ server: InteropServer) async throws {
        let (backends, dns, port) = try await startInteropFleet(server, Self.ips)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: testConfiguration(dns: dns))
        let served = try await withRunningPool(pool) { pool in
            try await sequentialGETs(pool, count: 300, prefix: "split")
        }
        try await expectExactSplit(served, backends: backends, prefix: "split")
    }

    @Test(arguments: InteropServer.allCases)
    func everyPostBodyArrivesExactlyOnceAndWhole(_ server: InteropServer) async throws {
        let (backends, dns, port) = try await startInteropFleet(server, Self.ips)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: testConfiguration(dns: dns))
        // 20 bodies of 64 KiB, four at a time: each is larger than the default initial stream
        // window (65,535 bytes), so against a server that keeps it (Apache, Node, hypercorn) each
        // waits for a WINDOW_UPDATE.
        let answers = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: Self.ips.count, timeout: .seconds(10))
            return try await withThrowingTaskGroup(of: [(String, String)].self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        var answers: [(String, String)] = []
                        for round in 0..<5 {
                            let number = worker * 5 + round
                            let response = try await pool.execute(
                                post(id: "post-\(number)"), body: .bytes(InteropPayload.postBody(number: number))
                            )
                            #expect(response.head.status == .ok, "post-\(number) from \(response.servedBy.ip)")
                            answers.append((response.servedBy.ip, String(buffer: response.body)))
                        }
                        return answers
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }
        #expect(answers.count == 20)
        let expectedAnswer = "\(InteropPayload.postLength)\n"
        #expect(answers.allSatisfy { $0.1 == expectedAnswer }, "\(answers.filter { $0.1 != expectedAnswer }.prefix(3))")
        var logged: [InteropLoggedRequest] = []
        for backend in backends {
            let expected = answers.count(where: { $0.0 == backend.ip })
            logged += try await self.logged(backend, prefix: "post-", count: expected)
        }
        // Each body reached one server exactly once, and all of it.
        #expect(logged.count == 20)
        #expect(Set(logged.map(\.requestID)) == Set((0..<20).map { "post-\($0)" }))
        for entry in logged {
            let number = try #require(Int(entry.requestID.dropFirst("post-".count)))
            #expect(entry.method == "POST")
            #expect(entry.receivedBytes == InteropPayload.postLength, "\(entry.requestID): \(entry.receivedBytes.map(String.init) ?? "-") bytes")
            #expect(entry.adler32 == InteropPayload.adler32(InteropPayload.postBody(number: number).readableBytesView),
                    "\(entry.requestID): the server received other bytes than were sent")
        }
    }

    @Test(arguments: InteropServer.allCases)
    func largeResponsesArriveWhole(_ server: InteropServer) async throws {
        let (backends, dns, port) = try await startInteropFleet(server, Self.ips)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: testConfiguration(dns: dns))
        // Ten 4 MiB responses, four at a time: four times the stream window the pool grants, and
        // together more than the connection window, so both windows are reopened as the bodies
        // are read.
        let results = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: Self.ips.count, timeout: .seconds(10))
            return try await withThrowingTaskGroup(of: [(String, Bool, Int)].self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        var results: [(String, Bool, Int)] = []
                        for number in stride(from: worker, to: 10, by: 4) {
                            let response = try await pool.execute(get("/big", id: "big-\(number)"))
                            #expect(response.head.status == .ok)
                            results.append((response.servedBy.ip, response.body == InteropPayload.bigBuffer, response.body.readableBytes))
                        }
                        return results
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }
        #expect(results.count == 10)
        for (address, intact, length) in results {
            #expect(length == InteropPayload.bigLength, "\(address) sent \(length) bytes")
            #expect(intact, "\(address) sent other bytes than the 4 MiB pattern")
        }
        #expect(Set(results.map(\.0)) == Set(Self.ips), "every address served some of them")
    }

    /// Kubernetes' pod stop: the pod gets its graceful-stop signal and leaves DNS while requests
    /// keep coming. One 4 MiB response is held open on that pod across the signal (its reader
    /// pauses, so the rest waits behind the stream window); it must arrive whole, and no request
    /// may fail.
    ///
    /// The load is `GET /` only: with large responses among it, the pool's own frame parser
    /// slows every connection down (see
    /// ``twoLargeResponsesAtATimeOnOneConnectionAreAsFastAsOneAtATime(_:)``).
    ///
    /// Against hypercorn this fails in about a third of the runs, and that is the pool's bug. On
    /// a graceful stop hypercorn answers each new stream with RST_STREAM(NO_ERROR) and
    /// SETTINGS_MAX_CONCURRENT_STREAMS = 0. The pool checks the server's limit when a request
    /// reserves a slot (`SubconnectionShared.tryReserve()`, off the event loop) but not when
    /// `ConnectionHandler.openStream` writes the HEADERS on the loop, so a request that reserved
    /// just before the SETTINGS was read opens a stream after the pool acknowledged the limit of
    /// zero. Captured on loopback: the server's RST_STREAMs and SETTINGS(3=0) for streams 61–73,
    /// the pool's seven SETTINGS ACKs, then 0.1 ms later its HEADERS on stream 75; python-h2 takes
    /// that as a connection error (RFC 9113 §5.1.2, §5.4.1), GOAWAY(PROTOCOL_ERROR,
    /// last-stream-id 73), and the held stream goes with the connection.
    @Test(arguments: InteropServer.allCases)
    func gracefulStopOfOneBackendUnderLoadFailsNoRequest(_ server: InteropServer) async throws {
        let (backends, dns, port) = try await startInteropFleet(server, Self.ips)
        defer { withExtendedLifetime((backends, dns)) {} }
        let stopping = backends[0]
        let remaining = Array(Self.ips.dropFirst())
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: testConfiguration(dns: dns))
        let load = InteropLoad()
        let (held, heldFailure, exitedByItself) = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: Self.ips.count, timeout: .seconds(10))
            // Round robin without other load: one of three consecutive requests lands there.
            for attempt in 0..<3 {
                let outcome = try await pool.execute(get("/big", id: "held-\(attempt)")) { response -> (ByteBuffer, String?, Bool)? in
                    guard response.servedBy.ip == stopping.ip else { return nil }
                    var body = ByteBuffer()
                    var iterator = response.body.makeAsyncIterator()
                    while body.readableBytes < 64 << 10, let chunk = try await iterator.next() {
                        body.writeImmutableBuffer(chunk)
                    }
                    return try await load.running(on: pool, workers: 8) {
                        try await waitFor("load on every address") { Self.ips.allSatisfy { load.successes(on: $0) >= 20 } }
                        stopping.beginGracefulStop()
                        try dns.setRecords([serviceName: remaining])
                        dns.reload()
                        var failure: String?
                        do {
                            while let chunk = try await iterator.next() {
                                body.writeImmutableBuffer(chunk)
                            }
                        } catch {
                            failure = "\(error)"
                        }
                        let exited = await stopping.waitForExit(gracePeriod: .seconds(15))
                        let afterExit = load.total
                        // (A slow exit may have used up the load's bound already.)
                        try await waitFor("200 requests after the stop", timeout: .seconds(20)) {
                            load.total >= afterExit + 200 || load.isOver
                        }
                        return (body, failure, exited)
                    }
                }
                if let outcome { return outcome }
            }
            throw SetupError(description: "no /big request of three landed on \(stopping.ip)")
        }
        #expect(exitedByItself, "\(server) did not finish its graceful stop within 15 s: \(stopping.stderr())")
        #expect(load.failures.isEmpty, "\(load.failures.count) of \(load.total) failed: \(load.failures.prefix(5))")
        #expect(load.successes(on: stopping.ip) > 0)
        for address in remaining {
            #expect(load.successes(on: address) > 100, "\(address)")
        }
        let heldArrivedWhole = {
            #expect(heldFailure == nil, "the response held across the stop failed: \(heldFailure ?? "")")
            #expect(held == InteropPayload.bigBuffer, "the held response: \(held.readableBytes) bytes, not the 4 MiB pattern")
        }
        if server == .apache {
            // mod_http2 (Apache 2.4.71, Debian bookworm): after SIGWINCH it sends nothing while
            // a stream waits for flow control; the next new stream makes it send GOAWAY(2^31-1)
            // and at once GOAWAY(last-stream-id = that stream's predecessor, error 0xfffffc7a, which
            // is nghttp2's NGHTTP2_ERR_CALLBACK_FAILURE and no HTTP/2 error code, "The user
            // callback function failed") and close: the held response is cut off. Reproduced
            // without the pool by a plain h2c client, so a server bug; it depends on timing.
            withKnownIssue("Apache mod_http2 drops a flow-controlled stream on graceful stop", isIntermittent: true) {
                heldArrivedWhole()
            }
        } else {
            heldArrivedWhole()
        }
    }

    /// The time `count` 4 MiB responses take, `concurrency` at a time; nil past `limit`.
    func timeLargeResponses(_ pool: LBPool, count: Int, concurrency: Int, limit: Duration) async throws -> Duration? {
        let start = ContinuousClock.now
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    for number in stride(from: worker, to: count, by: concurrency) {
                        let response = try await pool.execute(get("/big", id: "pace-\(concurrency)-\(number)"))
                        guard response.body == InteropPayload.bigBuffer else {
                            throw SetupError(description: "/big: \(response.body.readableBytes) bytes, not the 4 MiB pattern")
                        }
                    }
                    return true
                }
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            var finished = 0
            for try await workerFinished in group {
                guard workerFinished else { break }
                finished += 1
                if finished == concurrency { break }
            }
            group.cancelAll()
            return finished == concurrency ? ContinuousClock.now - start : nil
        }
    }

    /// Two large responses at a time on one connection must arrive about as fast as one at a
    /// time.
    ///
    /// Fails today against Apache, Node and hypercorn (against h2o in some runs), and it is the
    /// pool's bug: `HTTP2FrameParser.append(_:)` appends each read to the bytes left over from
    /// the last one, a slice that still holds every byte read before it on that storage. While
    /// DATA payloads already handed out share that storage (the other stream's reader has not
    /// taken them yet), the write copies it all, consumed bytes included, and the buffer never
    /// shrinks while a frame stays split across reads: a copy of everything received so far, per
    /// read. Against Node and nginx twelve 4 MiB responses took 0.2 s one at a time and 14–16 s
    /// two at a time, with the client's TCP window at zero and every stack sample in that copy
    /// (`ByteBuffer._copyStorageAndRebase` under `HTTP2FrameParser.append`). With
    /// `pending.discardReadBytes()` before the write (tried, not committed: library code) they
    /// took 0.1 s, and this test passed against all four servers.
    @Test(arguments: InteropServer.allCases)
    func twoLargeResponsesAtATimeOnOneConnectionAreAsFastAsOneAtATime(_ server: InteropServer) async throws {
        let ip = Self.ips[0]
        let port = try freePort(alsoOn: [ip])
        let backend = try InteropBackend(server, ip: ip, port: port)
        try await backend.start()
        defer { withExtendedLifetime(backend) {} }
        let pool = try LBPool(target: "http://\(ip):\(port)", configuration: testConfiguration(dns: nil))
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(10))
            let oneAtATime = try #require(try await timeLargeResponses(pool, count: 12, concurrency: 1, limit: .seconds(10)),
                                          "twelve 4 MiB responses one at a time took more than 10 s")
            // Healthy, both take about the same; a generous bound for a busy machine.
            let limit = max(oneAtATime * 5, .seconds(2))
            let twoAtATime = try await timeLargeResponses(pool, count: 12, concurrency: 2, limit: limit)
            #expect(twoAtATime != nil, "twelve 4 MiB responses two at a time on one connection took more than \(limit); one at a time \(oneAtATime)")
        }
    }

    /// The split again over TLS (ALPN h2), with a certificate for the name signed by a test CA.
    @Test(arguments: InteropServer.allCases)
    func sequentialRequestsSplitExactlyEvenlyOverTLS(_ server: InteropServer) async throws {
        let folder = try makeWorkFolder("interop-tls")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The TLS suite's certificate is for its name, which dnsmasq answers too.
        let tlsSuite = TLSIntegrationTests()
        let (ca, certificate, key) = try tlsSuite.makeCertificates(in: folder)
        let name = TLSIntegrationTests.name
        let (backends, dns, port) = try await startInteropFleet(
            server, Self.ips, name: name, tls: .init(certificate: certificate, key: key)
        )
        defer { withExtendedLifetime((backends, dns)) {} }
        var configuration = testConfiguration(dns: dns)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(ca)
        configuration.tls = tls
        let pool = try LBPool(target: "https://\(name):\(port)", configuration: configuration)
        let served = try await withRunningPool(pool) { pool in
            try await sequentialGETs(pool, count: 300, prefix: "tls")
        }
        try await expectExactSplit(served, backends: backends, prefix: "tls")
    }
}
