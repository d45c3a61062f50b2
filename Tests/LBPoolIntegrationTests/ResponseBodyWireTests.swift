import HTTPTypes
import LBPool
import NIOCore
import NIOHTTP2
import Synchronization
import Testing

/// Response and request bodies against an in-process server: cut off, short of their content-length, over the collect limit, streamed.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ResponseBodyWireTests: InProcessServerTesting {
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
}
