import HTTPTypes
import LBPool
import NIOCore
import NIOHTTP2
import Synchronization
import Testing

/// Streams per connection and maxConnections against an in-process server with a stream limit.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ConnectionLimitTests: InProcessServerTesting {
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
