import HTTPTypes
import LBPool
import NIOCore
import NIOHTTP2
import Synchronization
import Testing

/// PING keepalive against an in-process server that stops answering.
@Suite(.serialized, .timeLimit(.minutes(3))) struct KeepaliveTests: InProcessServerTesting {
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
