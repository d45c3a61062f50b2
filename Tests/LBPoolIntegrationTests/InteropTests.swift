import Foundation
import HTTPTypes
import LBPool
import NIOCore
import NIOSSL
import Testing

/// The pool against HTTP/2 servers other than nginx — Apache httpd's mod_http2, h2o, Node's http2
/// module and hypercorn — each as three pods on 127.0.0.2–4 behind dnsmasq, as the nginx tests
/// run it: the split, request bodies, large responses, a graceful stop under load, and TLS. The
/// same again over HTTP/1.1 against the three that serve it on the same port (Apache, h2o,
/// hypercorn).
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

    @Test(arguments: InteropCase.all)
    func sequentialRequestsSplitExactlyEvenly(_ test: InteropCase) async throws {
        let server = test.server
        let (backends, dns, port) = try await startInteropFleet(server, Self.ips)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: test.configuration(dns: dns))
        let served = try await withRunningPool(pool) { pool in
            try await sequentialGETs(pool, count: 300, prefix: "split")
        }
        try await expectExactSplit(served, backends: backends, prefix: "split")
    }

    @Test(arguments: InteropCase.all)
    func everyPostBodyArrivesExactlyOnceAndWhole(_ test: InteropCase) async throws {
        let server = test.server
        let (backends, dns, port) = try await startInteropFleet(server, Self.ips)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: test.configuration(dns: dns))
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
                            // Odd numbers streamed, of unknown length (chunked over HTTP/1.1), except to
                            // Apache, whose mod_lua reads only bodies of declared length
                            // (r:requestbody() answers 500 to one without).
                            let payload = InteropPayload.postBody(number: number)
                            let slices = Slices(of: payload, size: 16 << 10)
                            let body: RequestBody =
                                number % 2 == 0 ? .bytes(payload) : .stream(slices, length: server == .apache ? payload.readableBytes : nil)
                            let response = try await pool.execute(post(id: "post-\(number)"), body: body)
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
            #expect(
                entry.adler32 == InteropPayload.adler32(InteropPayload.postBody(number: number).readableBytesView),
                "\(entry.requestID): the server received other bytes than were sent")
        }
    }

    @Test(arguments: InteropCase.all)
    func largeResponsesArriveWhole(_ test: InteropCase) async throws {
        let server = test.server
        let (backends, dns, port) = try await startInteropFleet(server, Self.ips)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: test.configuration(dns: dns))
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
    /// On a graceful stop hypercorn answers each new stream with RST_STREAM(NO_ERROR) and
    /// SETTINGS_MAX_CONCURRENT_STREAMS = 0; a request that reserved its slot just before that
    /// SETTINGS was read must not open a stream past the new limit (python-h2 would take it as a
    /// connection error and drop the held stream with the connection): the connection handler
    /// checks the limit again when it writes the HEADERS, and sends the request elsewhere.
    @Test(arguments: InteropCase.all)
    func gracefulStopOfOneBackendUnderLoadFailsNoRequest(_ test: InteropCase) async throws {
        let server = test.server
        let (backends, dns, port) = try await startInteropFleet(server, Self.ips)
        defer { withExtendedLifetime((backends, dns)) {} }
        let stopping = backends[0]
        let remaining = Array(Self.ips.dropFirst())
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: test.configuration(dns: dns))
        let load = InteropLoad()
        let (held, heldFailure, exitedByItself) = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: Self.ips.count, timeout: .seconds(10))
            // Round robin without other load: one of three consecutive requests lands there (nine
            // tries, in case a transparent re-send elsewhere took an extra pick).
            for attempt in 0..<9 {
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
            throw SetupError(description: "no /big request of nine landed on \(stopping.ip)")
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
        // mod_http2 (Apache 2.4.71, Debian bookworm) cannot be held to this: after SIGWINCH it
        // sends nothing while a stream waits for flow control; the next new stream makes it send
        // GOAWAY(2^31-1) and at once GOAWAY(last-stream-id = that stream's predecessor, error
        // 0xfffffc7a, nghttp2's NGHTTP2_ERR_CALLBACK_FAILURE, no HTTP/2 error code) and close,
        // cutting the held response off. Reproduced without the pool by a plain h2c client: a
        // server bug. Against Apache the rest of the test holds (nothing else fails).
        if server != .apache || test.httpVersion == .http1 {
            heldArrivedWhole()
        }
    }

    /// The split again over TLS (ALPN h2), with a certificate for the name signed by a test CA.
    @Test(arguments: InteropCase.all)
    func sequentialRequestsSplitExactlyEvenlyOverTLS(_ test: InteropCase) async throws {
        let server = test.server
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
        var configuration = test.configuration(dns: dns)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(ca)
        configuration.tls = tls
        let pool = try LBPool(target: "https://\(name):\(port)", configuration: configuration)
        let served = try await withRunningPool(pool) { pool in
            try await sequentialGETs(pool, count: 300, prefix: "tls")
        }
        try await expectExactSplit(served, backends: backends, prefix: "tls")
    }

    /// A server and the HTTP version the pool speaks to it.
    struct InteropCase: Sendable, CustomStringConvertible {
        var server: InteropServer
        var httpVersion: LBPool.Configuration.HTTPVersion

        var description: String { "\(server) over \(httpVersion == .http1 ? "HTTP/1.1" : "HTTP/2")" }

        /// Every server over HTTP/2; over HTTP/1.1 those that serve it on the same port (Node's
        /// http2 module does not).
        static let all =
            InteropServer.allCases.map { InteropCase(server: $0, httpVersion: .http2) }
            + [InteropServer.apache, .h2o, .hypercorn].map { InteropCase(server: $0, httpVersion: .http1) }

        func configuration(dns: DNSServer) -> LBPool.Configuration {
            var configuration = testConfiguration(dns: dns)
            configuration.httpVersion = httpVersion
            return configuration
        }
    }

    /// Runs `body` with a ready pool on one pod of `server` on 127.0.0.2 (no DNS).
    func withOneBackend<Result: Sendable>(_ server: InteropServer, _ body: (LBPool) async throws -> Result) async throws -> Result {
        let ip = Self.ips[0]
        let backend = try InteropBackend(server, ip: ip, port: try freePort(alsoOn: [ip]))
        try await backend.start()
        defer { withExtendedLifetime(backend) {} }
        let pool = try LBPool(target: "http://\(ip):\(backend.port)", configuration: testConfiguration(dns: nil))
        return try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(10))
            return try await body(pool)
        }
    }

    /// The servers whose `/echo` answers each chunk as it arrives and whose `/trailers` sends
    /// trailers (Apache and h2o serve static files only here).
    static let appServers: [InteropServer] = [.node, .hypercorn]

    /// A full-duplex exchange on one stream: chunk n+1 is written only after the server's echo of
    /// chunk n was read.
    @Test(arguments: appServers)
    func fullDuplexEchoAnswersEachChunkBeforeTheNext(_ server: InteropServer) async throws {
        let echoed = try await withOneBackend(server) { pool in
            let request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/echo")
            return try await pool.execute(
                request,
                duplex: { stream -> Int in
                    var body: ResponseBody.AsyncIterator?
                    var echoed = 0
                    for number in 0..<100 {
                        let message = "chunk \(number) of the exchange\n"
                        try await stream.write(ByteBuffer(string: message))
                        if body == nil { body = try await stream.response().body.makeAsyncIterator() }
                        var answer = ""
                        while answer.utf8.count < message.utf8.count, let chunk = try await body?.next() {
                            answer += String(buffer: chunk)
                        }
                        #expect(answer == message, "\(server)")
                        if answer == message { echoed += 1 }
                    }
                    try await stream.finish()
                    while try await body?.next() != nil {}
                    return echoed
                })
        }
        #expect(echoed == 100, "\(server)")
    }

    /// Response trailers reach the caller of a collected request.
    @Test(arguments: appServers)
    func responseTrailersReachTheCaller(_ server: InteropServer) async throws {
        let ip = Self.ips[0]
        let response = try await withOneBackend(server) { pool in
            var request = get("/trailers", id: "trailers-1")
            // hypercorn sends trailers only to a request that says it takes them.
            request.headerFields[.te] = "trailers"
            return try await pool.execute(request)
        }
        #expect(String(buffer: response.body) == "trailers from \(ip)\n", "\(server)")
        #expect(response.trailers?[HTTPField.Name("grpc-status")!] == "0", "\(server): \(String(describing: response.trailers))")
        let checksum = InteropPayload.adler32(response.body.readableBytesView)
        #expect(response.trailers?[HTTPField.Name("x-checksum")!] == "\(checksum)", "\(server)")
    }
}

/// `buffer` in slices of `size` bytes, one at a time: a request body of unknown length.
struct Slices: AsyncSequence, Sendable {
    let buffer: ByteBuffer
    let size: Int

    init(of buffer: ByteBuffer, size: Int) {
        self.buffer = buffer
        self.size = size
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var rest: ByteBuffer
        let size: Int

        mutating func next() async -> ByteBuffer? {
            guard rest.readableBytes > 0 else { return nil }
            return rest.readSlice(length: Swift.min(size, rest.readableBytes))
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rest: buffer, size: size) }
}
