import HTTPTypes
import LBPool
import NIOCore
import NIOHTTP2
import Synchronization
import Testing

/// What the tests against ``TestHTTP2Server`` (an in-process HTTP/2 server that does exactly
/// what a test says) share: a pool on it, a server that answers as told, requests.
protocol InProcessServerTesting {}

extension InProcessServerTesting {
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

    /// Three chunks, produced as they are sent.
    static func chunks(_ parts: [String]) -> RequestBody {
        let stream = AsyncStream<ByteBuffer> { continuation in
            for part in parts { continuation.yield(ByteBuffer(string: part)) }
            continuation.finish()
        }
        return .stream(stream)
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
