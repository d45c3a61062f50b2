import HTTPTypes
import LBPool
import NIOCore
import NIOHTTP2
import Synchronization
import Testing

/// A request's deadline and its cancellation, against an in-process server that does not answer.
@Suite(.serialized, .timeLimit(.minutes(3))) struct DeadlineAndCancellationTests: InProcessServerTesting {
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
}
