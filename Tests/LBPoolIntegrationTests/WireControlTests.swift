import HTTPTypes
import LBPool
import NIOCore
import NIOHTTP2
import Synchronization
import Testing

/// The pool against an in-process HTTP/2 server that does exactly what each test says.
@Suite(.serialized, .timeLimit(.minutes(3))) struct WireControlTests {
    func pool(_ server: TestHTTP2Server, _ configure: (inout LBPool.Configuration) -> Void = { _ in }) throws -> LBPool {
        var configuration = testConfiguration(dns: nil)
        configure(&configuration)
        return try LBPool(target: "http://127.0.0.1:\(server.port)", configuration: configuration)
    }

    /// Runs `body` against a pool on a new server that answers each request as `answer` says,
    /// given the request and the number of its attempt (from 1); returns the attempts seen.
    func withAnsweringServer(
        _ configure: (inout LBPool.Configuration) -> Void = { _ in },
        answer: @escaping @Sendable (TestHTTP2Server.Request, Int) -> Void,
        _ body: (LBPool) async throws -> Void
    ) async throws -> AttemptCounter {
        let server = try await TestHTTP2Server()
        let pool = try pool(server, configure)
        let attempts = AttemptCounter()
        try await withRunningPool(pool) { pool in
            let serverTask = Task {
                for await request in server.requests { answer(request, attempts.record(request.requestID)) }
            }
            try await body(pool)
            serverTask.cancel()
            await server.close()
        }
        return attempts
    }

    /// Against a server whose first answer to each request breaks off: the GET `get-1` is
    /// answered "whole" on its second attempt; the POST `post-1` fails, and its error is returned.
    func getIsRetriedAndPostIsNot(_ pool: LBPool) async throws -> LBPoolError? {
        var get = HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/")
        get.headerFields[HTTPField.Name("x-request-id")!] = "get-1"
        let response = try await pool.execute(get)
        #expect(String(buffer: response.body) == "whole")
        #expect(response.attempts == 2)
        return await #expect(throws: LBPoolError.self) {
            try await pool.execute(post(id: "post-1"), body: .bytes(ByteBuffer(string: "x")))
        }
    }

    func post(id: String) -> HTTPRequest {
        var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/")
        request.headerFields[HTTPField.Name("x-request-id")!] = id
        return request
    }

    @Test func goAwayInTheMiddleOfTenStreamsSplitsThemAtTheLastStreamID() async throws {
        let server = try await TestHTTP2Server()
        let pool = try pool(server)
        let results = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(5))
            return try await withThrowingTaskGroup(of: (String, String).self) { group in
                // The server: hold the first ten requests, then GOAWAY at the fifth stream and
                // answer the five below it; everything else is answered at once.
                group.addTask {
                    var held: [TestHTTP2Server.Request] = []
                    for await request in server.requests {
                        if request.connection.number == 1 && held.count < 10 {
                            held.append(request)
                            if held.count == 10 {
                                let ids = held.map(\.streamID).sorted()
                                request.connection.goAway(lastStreamID: ids[4])
                                for old in held where old.streamID <= ids[4] {
                                    old.respond(body: "connection \(old.connection.number)")
                                }
                            }
                        } else {
                            request.respond(body: "connection \(request.connection.number)")
                        }
                    }
                    return ("", "")
                }
                let requests = (0..<10).map { number in
                    Task { () -> (String, String) in
                        let response = try await pool.execute(post(id: "mid-\(number)"), body: .bytes(ByteBuffer(string: "payload")))
                        return ("mid-\(number)", String(buffer: response.body))
                    }
                }
                var results: [String: String] = [:]
                for request in requests {
                    let (id, body) = try await request.value
                    results[id] = body
                }
                group.cancelAll()
                await server.close()
                return results
            }
        }
        let answers = results.values.sorted()
        #expect(answers.count == 10)
        #expect(answers.filter { $0 == "connection 1" }.count == 5, "\(results)")
        #expect(answers.filter { $0 != "connection 1" }.count == 5, "the five above the last-stream-id went to a new connection: \(results)")
        #expect(server.connectionsAccepted >= 2)
    }

    @Test func refusedStreamIsSentAgainEvenForAPost() async throws {
        let attempts = try await withAnsweringServer { request, attempt in
            if attempt == 1 { request.refuse() } else { request.respond(body: "second try") }
        } _: { pool in
            let response = try await pool.execute(post(id: "refused-1"), body: .bytes(ByteBuffer(string: "x")))
            #expect(String(buffer: response.body) == "second try")
        }
        #expect(attempts.count("refused-1") == 2)
    }

    @Test func bodyCutOffBeforeTheCallerHadItIsRetriedOnlyWhenIdempotent() async throws {
        let attempts = try await withAnsweringServer { request, attempt in
            if attempt == 1 {
                // Head and part of the body, then the connection dies.
                request.respond(body: "partial", end: false)
                request.connection.channel.close(promise: nil)
            } else {
                request.respond(body: "whole")
            }
        } _: { pool in
            let error = try await getIsRetriedAndPostIsNot(pool)
            #expect(error?.code == .connectionFailed)
            #expect(error?.message.contains("response body ended") == true, "\(String(describing: error))")
        }
        #expect(attempts.count("get-1") == 2)
        #expect(attempts.count("post-1") == 1, "a POST that may have been processed is not sent again")
    }

    @Test func aBodyShorterThanItsContentLengthIsAFailureRetriedOnlyWhenIdempotent() async throws {
        let attempts = try await withAnsweringServer { request, attempt in
            if attempt == 1 {
                request.respond(headers: [("content-length", "10")], body: "short")
            } else {
                request.respond(headers: [("content-length", "5")], body: "whole")
            }
        } _: { pool in
            let error = try await getIsRetriedAndPostIsNot(pool)
            #expect("\(String(describing: error))".contains("content-length says 10"), "\(String(describing: error))")
        }
        #expect(attempts.count("get-1") == 2)
        #expect(attempts.count("post-1") == 1)
    }

    @Test func aResponseWithAnUpperCaseHeaderNameIsRefusedAsMalformed() async throws {
        let attempts = try await withAnsweringServer { request, _ in
            if request.requestID == "post-upper" {
                request.respond(headers: [("X-Upper", "1")], body: "x")
            } else {
                request.respond(body: "fine")
            }
        } _: { pool in
            var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/")
            request.headerFields[HTTPField.Name("x-request-id")!] = "post-upper"
            let error = await #expect(throws: LBPoolError.self) {
                try await pool.execute(request, body: .bytes(ByteBuffer(string: "x")))
            }
            #expect("\(String(describing: error))".contains("malformed header name 'X-Upper'"), "\(String(describing: error))")
            // The connection serves on: only the stream was reset.
            let next = try await pool.execute(HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/"))
            #expect(String(buffer: next.body) == "fine")
            #expect(next.attempts == 1)
        }
        #expect(attempts.count("post-upper") == 1, "a POST whose response was malformed is not sent again")
    }

    @Test func aResponseThatEndsBeforeTheRequestBodyIsSentEndsTheStream() async throws {
        // The server answers on the head and never opens its window for the 1 MiB body (beyond
        // the 64 KiB initial window). The stream must end with the response: left open, it
        // would hold the connection's drain to the drain deadline (60 s here).
        let server = try await TestHTTP2Server()
        let pool = try pool(server) { $0.drainTimeout = .seconds(60) }
        let events = pool.events()
        try await withRunningPool(pool) { pool in
            let serverTask = Task {
                for await request in server.requests { request.respond(body: "answered") }
            }
            var early = post(id: "early-1")
            early.headerFields[HTTPField.Name("x-answer-early")!] = "1"
            let response = try await pool.execute(early, body: .bytes(ByteBuffer(repeating: UInt8(ascii: "b"), count: 1 << 20)))
            #expect(String(buffer: response.body) == "early")
            let next = try await pool.execute(post(id: "after-1"), body: .bytes(ByteBuffer(string: "x")))
            #expect(String(buffer: next.body) == "answered")

            server.connection(1)?.goAway(lastStreamID: Int(Int32.max))
            let closed = try await withThrowingTaskGroup(of: PoolEvent?.self) { group in
                group.addTask {
                    for await event in events {
                        if case .closed = event.kind { return event }
                    }
                    return nil
                }
                group.addTask {
                    // Failure guard only: the close is awaited above, the drain deadline is 60 s.
                    try await Task.sleep(for: .seconds(15))
                    return nil
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                return first
            }
            #expect(closed != nil, "the connection did not close within 15 s of GOAWAY: a stream was left open")
            serverTask.cancel()
            await server.close()
        }
    }

    @Test func collectedBodyOverTheLimitFailsAndOneWithinItArrivesWhole() async throws {
        _ = try await withAnsweringServer {
            $0.maxCollectedBodyBytes = 10
        } answer: { request, _ in
            switch request.requestID {
            case "one-chunk": request.respond(body: String(repeating: "a", count: 11))
            case "two-chunks":
                request.respond(body: "123456", end: false)
                request.sendData("7890x", end: true)
            default:
                request.respond(body: "12345", end: false)
                request.sendData("67890", end: true)
            }
        } _: { pool in
            for id in ["one-chunk", "two-chunks"] {
                let error = await #expect(throws: LBPoolError.self) { try await pool.execute(post(id: id)) }
                #expect(error?.code == .responseTooLarge)
                #expect(error?.message.contains("10 bytes") == true, "\(String(describing: error))")
            }
            let response = try await pool.execute(post(id: "exactly-ten"))
            #expect(String(buffer: response.body) == "1234567890")
        }
    }

    @Test func unansweredRequestFailsAtItsDeadlineAndTheConnectionServesOn() async throws {
        let attempts = try await withAnsweringServer { request, _ in
            if request.requestID != "silent" { request.respond(body: "answered") }
        } _: { pool in
            let error = await #expect(throws: LBPoolError.self) {
                try await pool.execute(post(id: "silent"), body: .bytes(ByteBuffer(string: "x")), timeout: .milliseconds(300))
            }
            #expect(error?.code == .deadlineExceeded, "\(String(describing: error))")
            let response = try await pool.execute(post(id: "after"))
            #expect(String(buffer: response.body) == "answered")
            let connections = pool.snapshot().addresses.flatMap(\.connections)
            #expect(connections.count == 1, "the expired stream was reset, not the connection")
            #expect(connections.allSatisfy { $0.inFlight == 0 })
        }
        #expect(attempts.count("silent") == 1, "a request past its deadline is not sent again")
    }

    @Test func cancelledRequestEndsWithCancellationAndTheConnectionServesOn() async throws {
        let seen = AttemptCounter()
        _ = try await withAnsweringServer { request, _ in
            _ = seen.record(request.requestID)
            if request.requestID != "held" { request.respond(body: "answered") }
        } _: { pool in
            let held = Task { try await pool.execute(get(id: "held")) }
            try await waitFor("the server to have the request") { seen.count("held") == 1 }
            held.cancel()
            let result = await held.result
            #expect(throws: CancellationError.self) { try result.get() }
            let response = try await pool.execute(get(id: "after"))
            #expect(String(buffer: response.body) == "answered")
            let connections = pool.snapshot().addresses.flatMap(\.connections)
            #expect(connections.count == 1)
            #expect(connections.allSatisfy { $0.inFlight == 0 })
        }
        #expect(seen.count("held") == 1)
    }

    @Test func aPathHTTP2CannotCarryIsRefusedBeforeAnythingIsSent() async throws {
        let attempts = try await withAnsweringServer { request, _ in
            request.respond(body: "answered")
        } _: { pool in
            for path in ["", "relative/path", "*", "/a b", "/line\r\nx-injected: 1"] {
                var request = HTTPRequest(method: .get, scheme: nil, authority: nil, path: path)
                request.headerFields[HTTPField.Name("x-request-id")!] = "bad-path"
                let error = await #expect(throws: LBPoolError.self) { try await pool.execute(request) }
                #expect(error?.code == .invalidRequest)
                // HTTPTypes turns CR and LF into spaces; either way the path is refused.
                #expect(
                    error?.message.contains("path '\(path.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " "))'") == true,
                    "\(String(describing: error))")
            }
            var badAuthority = HTTPRequest(method: .get, scheme: nil, authority: "api\r\nx: 1", path: "/")
            badAuthority.headerFields[HTTPField.Name("x-request-id")!] = "bad-path"
            let authorityError = await #expect(throws: LBPoolError.self) { try await pool.execute(badAuthority) }
            #expect(
                authorityError?.message.contains("authority 'api  x: 1' is empty or contains a space or control character") == true,
                "\(String(describing: authorityError))")
            var options = HTTPRequest(method: .options, scheme: nil, authority: nil, path: "*")
            options.headerFields[HTTPField.Name("x-request-id")!] = "asterisk"
            let response = try await pool.execute(options)
            #expect(String(buffer: response.body) == "answered")
        }
        #expect(attempts.count("bad-path") == 0, "nothing was sent")
        #expect(attempts.count("asterisk") == 1)
    }

    @Test func streamHearsGoAwayWithItsCodeBeforeItEnds() async throws {
        let server = try await TestHTTP2Server()
        let pool = try pool(server)
        let (proceed, proceedSink) = AsyncStream.makeStream(of: Void.self)
        try await withRunningPool(pool) { pool in
            let serverTask = Task {
                for await request in server.requests {
                    request.respond(body: "first part;", end: false)
                    request.connection.goAway(lastStreamID: request.streamID, errorCode: .enhanceYourCalm)
                    // Finish the stream only once the client has heard the GOAWAY.
                    for await _ in proceed { break }
                    request.sendData("second part", end: true)
                }
            }
            let (reason, rest) = try await pool.execute(HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/long")) { response in
                var iterator = response.body.makeAsyncIterator()
                let first = try await iterator.next()
                #expect(first.map { String(buffer: $0) } == "first part;")
                let reason = try await response.connectionClosing.wait()
                proceedSink.yield()
                var rest = ""
                while let chunk = try await iterator.next() { rest += String(buffer: chunk) }
                return (reason, rest)
            }
            #expect(reason == .goAway(errorCode: .enhanceYourCalm, lastStreamID: 1, debugData: ""))
            #expect(rest == "second part", "the stream outlived its closing signal")
            serverTask.cancel()
            await server.close()
        }
    }

    @Test func unansweredPingsReplaceTheConnection() async throws {
        let server = try await TestHTTP2Server()
        let interval = Duration.milliseconds(200)
        let timeout = Duration.milliseconds(300)
        let pool = try pool(server) {
            $0.keepalive = .init(interval: interval, timeout: timeout, permitWithoutStreams: true)
        }
        let events = pool.events()
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(5))
            let serverTask = Task { for await request in server.requests { request.respond(body: "ok") } }
            let first = try #require(server.connection(1))
            let start = ContinuousClock.now
            first.stopAnswering()
            var timedOutAt: ContinuousClock.Instant?
            for await event in events {
                if event.kind == .draining(.keepaliveTimeout) { timedOutAt = event.time }
                if timedOutAt != nil, event.kind == .ready { break }
            }
            let timedOut = try #require(timedOutAt)
            #expect(timedOut - start <= interval + timeout + .seconds(1), "declared dead after \(timedOut - start)")
            let response = try await pool.execute(HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/"))
            #expect(String(buffer: response.body) == "ok")
            #expect(server.connectionsAccepted == 2)
            serverTask.cancel()
            await server.close()
        }
    }
}

extension WireControlTests {
    /// The server allows 2 streams per connection and answers nothing until `hold` requests
    /// arrived; returns how many connections the pool opened and whether every request succeeded.
    func streamLimitRun(maxConnections: Int, requests: Int, hold: Int) async throws -> (connections: Int, succeeded: Int) {
        let server = try await TestHTTP2Server(maxConcurrentStreams: 2)
        let pool = try pool(server) { $0.maxConnections = maxConnections }
        let succeeded = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(5))
            let serverTask = Task {
                var held: [TestHTTP2Server.Request] = []
                for await request in server.requests {
                    if held.count < hold {
                        held.append(request)
                        if held.count == hold { held.forEach { $0.respond(body: "ok") } }
                    } else {
                        request.respond(body: "ok")
                    }
                }
            }
            let succeeded = await withTaskGroup(of: Bool.self) { group in
                for number in 0..<requests {
                    group.addTask {
                        let response = try? await pool.execute(post(id: "limit-\(number)"), timeout: .seconds(5))
                        return response.map { String(buffer: $0.body) == "ok" } ?? false
                    }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            serverTask.cancel()
            await server.close()
            return succeeded
        }
        return (server.connectionsAccepted, succeeded)
    }

    @Test func fullConnectionsOpenAnotherUpToMaxConnections() async throws {
        // Six held streams need three connections of two streams each.
        let run = try await streamLimitRun(maxConnections: 3, requests: 6, hold: 6)
        #expect(run.connections == 3)
        #expect(run.succeeded == 6)
    }

    @Test func atMaxConnectionsRequestsQueueForAFreeStream() async throws {
        // Two connections carry four streams; the other two wait and go when those finish.
        let run = try await streamLimitRun(maxConnections: 2, requests: 6, hold: 4)
        #expect(run.connections == 2)
        #expect(run.succeeded == 6)
    }
}

extension WireControlTests {
    /// Three chunks, produced as they are sent.
    static func chunks(_ parts: [String]) -> RequestBody {
        let stream = AsyncStream<ByteBuffer> { continuation in
            for part in parts { continuation.yield(ByteBuffer(string: part)) }
            continuation.finish()
        }
        return .stream(stream)
    }

    @Test func streamedBodyArrivesWhole() async throws {
        let server = try await TestHTTP2Server()
        let pool = try pool(server)
        try await withRunningPool(pool) { pool in
            let serverTask = Task { for await request in server.requests { request.respond(body: "got " + request.body) } }
            let response = try await pool.execute(post(id: "streamed"), body: Self.chunks(["one,", "two,", "three"]))
            #expect(String(buffer: response.body) == "got one,two,three")
            serverTask.cancel()
            await server.close()
        }
    }

    @Test func refusedStreamWithAnAlreadyReadBodyIsNotSentAgain() async throws {
        let server = try await TestHTTP2Server()
        let pool = try pool(server)
        let attempts = AttemptCounter()
        try await withRunningPool(pool) { pool in
            let serverTask = Task {
                for await request in server.requests {
                    _ = attempts.record(request.requestID)
                    request.refuse()
                }
            }
            let error = await #expect(throws: LBPoolError.self) {
                _ = try await pool.execute(post(id: "streamed-refused"), body: Self.chunks(["a", "b"]))
            }
            #expect(error?.message.contains("streamed body was already read") == true, "\(String(describing: error))")
            serverTask.cancel()
            await server.close()
        }
        #expect(attempts.count("streamed-refused") == 1)
    }
}

/// Counts attempts per request id, as the server sees them.
final class AttemptCounter: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    /// Records one attempt; returns how many this id has had, this one included.
    func record(_ id: String) -> Int {
        counts.withLock { counts in
            counts[id, default: 0] += 1
            return counts[id, default: 0]
        }
    }

    func count(_ id: String) -> Int {
        counts.withLock { $0[id, default: 0] }
    }
}
