import HTTPTypes
import LBPool
import Logging
import NIOCore

// The code of the README and the DocC articles, compiled with the tests so that it stays true.
// Nothing here runs; a change of the API that breaks an example breaks the build.

enum DocumentationExamples {
    static func quickStart() async throws {
        var configuration = LBPool.Configuration()
        configuration.minConnections = 2

        let pool = try LBPool(target: "http://api.default.svc.cluster.local:8080", configuration: configuration)

        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await pool.run() }

            let response = try await pool.execute(HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/hello"))
            print(response.head.status, response.servedBy, String(buffer: response.body))

            try await pool.execute(HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/events")) { response in
                for try await chunk in response.body { print(chunk.readableBytes) }
            }

            pool.shutDown()
        }
    }

    static func fullDuplex(pool: LBPool) async throws -> HTTPFields? {
        let request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/chat")
        let trailers = try await pool.execute(
            request,
            duplex: { stream in
                try await stream.write(ByteBuffer(string: "hello\n"))
                let response = try await stream.response()
                var body = response.body.makeAsyncIterator()
                if let answer = try await body.next() {
                    try await stream.write(ByteBuffer(string: "you said \(answer.readableBytes) bytes\n"))
                }
                try await stream.finish(trailers: [HTTPField.Name("x-done")!: "1"])
                while let more = try await body.next() { print(more.readableBytes) }
                return response.body.trailers
            })
        return trailers
    }

    static func longLivedStream(pool: LBPool, process: (ByteBuffer) -> String) async throws {
        var cursor = "0"
        while !Task.isCancelled {
            let request = HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/events?after=\(cursor)")
            try await pool.execute(request) { response in
                let closing = response.connectionClosing, servedBy = response.servedBy
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        let reason = try await closing.wait()
                        print("connection to \(servedBy) closing: \(reason)")
                    }
                    for try await chunk in response.body {
                        cursor = process(chunk)
                    }
                    group.cancelAll()
                }
            }
        }
    }

    static func observability(logger: Logger) async throws {
        let pool = try LBPool(target: "http://api:8080", logger: logger)
        print(pool.snapshot())
        for await event in pool.events() {
            print(event)
        }
    }

    /// README, "Large fleets: subsetting", and the Kubernetes article.
    static func subsetting(podName: String) throws -> LBPool {
        var configuration = LBPool.Configuration()
        configuration.subset = .init(size: 10, key: podName)  // 1 000 × 10 connections, not 1 000 × 1 000
        return try LBPool(target: "http://api.default.svc.cluster.local:8080", configuration: configuration)
    }
}
