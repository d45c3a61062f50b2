import HTTPTypes
import LBPool
import NIOCore
import NIOHTTP2
import Synchronization
import Testing

/// GOAWAY and REFUSED_STREAM from an in-process server: which streams are sent again, and who hears of it.
@Suite(.serialized, .timeLimit(.minutes(3))) struct GoAwayAndRefusedStreamTests: InProcessServerTesting {
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
