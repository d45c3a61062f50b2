import HTTPTypes
import LBPool
import Logging
import NIOCore
import ServiceLifecycle
import Testing

/// Graceful shutdown through swift-service-lifecycle, against the in-process server.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ShutdownTests {
    @Test func gracefulShutdownRefusesNewRequestsAndLetsOpenOnesFinish() async throws {
        let server = try await TestHTTP2Server()
        let pool = try LBPool(target: "http://127.0.0.1:\(server.port)", configuration: testConfiguration(dns: nil))
        let group = ServiceGroup(services: [pool], logger: Logger(label: "test"))
        let events = pool.events()
        let (arrived, arrivedSink) = AsyncStream.makeStream(of: TestHTTP2Server.Request.self)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            let running = Task { try await group.run() }
            tasks.addTask { for await request in server.requests { arrivedSink.yield(request) } }
            try await pool.waitUntilReady(timeout: .seconds(5))

            let inFlight = (0..<3).map { number in
                Task { () -> (String, ConnectionCloseReason?) in
                    try await pool.execute(get(id: "open-\(number)")) { response in
                        var body = ""
                        for try await chunk in response.body { body += String(buffer: chunk) }
                        return (body, response.connectionClosing.reason)
                    }
                }
            }
            var held: [TestHTTP2Server.Request] = []
            for await request in arrived {
                held.append(request)
                if held.count == 3 { break }
            }
            // Every request has its head answered, so its closing signal is there to see.
            for request in held { request.respond(body: "part one, ", end: false) }

            await group.triggerGracefulShutdown()
            // The trigger is asynchronous: the pool's own event says when it took effect.
            for await event in events where event.kind == .draining(.poolShutdown) { break }
            let refused = await #expect(throws: LBPoolError.self) {
                _ = try await pool.execute(get(id: "after-shutdown"))
            }
            #expect(refused?.code == .shutdown)
            #expect(refused?.message.contains("shutting down") == true)

            for request in held { request.sendData("part two", end: true) }
            for task in inFlight {
                let (body, reason) = try await task.value
                #expect(body == "part one, part two")
                #expect(reason == .poolShutdown)
            }
            // The group's run() — and so the pool's — returns by itself once the drained
            // connection closed.
            try await running.value
            tasks.cancelAll()
            await server.close()
        }
    }

    @Test func drainDeadlineBoundsGracefulShutdown() async throws {
        let server = try await TestHTTP2Server()
        var configuration = testConfiguration(dns: nil)
        configuration.drainTimeout = .milliseconds(300)
        let pool = try LBPool(target: "http://127.0.0.1:\(server.port)", configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            let running = Task { try await pool.run() }
            try await pool.waitUntilReady(timeout: .seconds(5))
            // The server never answers this one.
            let stuck = Task { try await pool.execute(get(id: "never-answered"), timeout: .seconds(30)) }
            for await _ in server.requests { break }
            let start = ContinuousClock.now
            pool.shutDown()
            try await running.value
            #expect(ContinuousClock.now - start < .seconds(5), "run() waited \(ContinuousClock.now - start)")
            let error = await #expect(throws: LBPoolError.self) { try await stuck.value }
            #expect(error?.message.contains("drain deadline") == true, "\(String(describing: error))")
            tasks.cancelAll()
            await server.close()
        }
    }
}
