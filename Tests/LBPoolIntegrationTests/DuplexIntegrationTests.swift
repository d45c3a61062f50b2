import Foundation
import HTTPTypes
import LBPool
import NIOCore
import Testing

/// Full-duplex streams against a real server that answers while the client is still sending.
@Suite(.serialized, .timeLimit(.minutes(2))) struct DuplexIntegrationTests {
    @Test func aThousandRoundTripsOnOneStreamThenTrailersBothWays() async throws {
        let server = try NodeEchoServer(port: try freePort())
        try await server.start()
        let pool = try LBPool(target: "http://127.0.0.1:\(server.port)", configuration: testConfiguration(dns: nil))
        let (trailers, echoed) = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(5))
            let request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/echo")
            return try await pool.execute(request, duplex: { stream -> (HTTPFields?, Int) in
                var response: LBPool.StreamingResponse?
                var body: ResponseBody.AsyncIterator?
                var echoed = 0
                for number in 0..<1000 {
                    // Message n+1 goes out only after the answer to message n was read.
                    let message = "message \(number)\n"
                    try await stream.write(ByteBuffer(string: message))
                    if response == nil {
                        let head = try await stream.response()
                        #expect(head.head.status == .ok)
                        response = head
                        body = head.body.makeAsyncIterator()
                    }
                    var answer = ""
                    while answer.utf8.count < message.utf8.count {
                        guard let chunk = try await body?.next() else {
                            Issue.record("the body ended at message \(number)")
                            return (nil, echoed)
                        }
                        answer += String(buffer: chunk)
                    }
                    #expect(answer == message)
                    echoed += 1
                }
                try await stream.finish(trailers: [HTTPField.Name("x-client-done")!: "yes"])
                while let extra = try await body?.next() {
                    Issue.record("unexpected bytes after the last answer: \(String(buffer: extra))")
                }
                return (response?.body.trailers, echoed)
            })
        }
        await server.stop()
        #expect(echoed == 1000)
        #expect(trailers?[HTTPField.Name("x-chunks")!] == "1000", "\(String(describing: trailers))")
        let bytes = (0..<1000).map { "message \($0)\n".utf8.count }.reduce(0, +)
        #expect(trailers?[HTTPField.Name("x-bytes")!] == "\(bytes)")
        #expect(trailers?[HTTPField.Name("x-client-done")!] == "yes", "the request's trailers reached the server")
    }

    @Test func writingAfterTheServerEndedTheResponseFailsAndSaysSo() async throws {
        let server = try NodeEchoServer(port: try freePort())
        try await server.start()
        let pool = try LBPool(target: "http://127.0.0.1:\(server.port)", configuration: testConfiguration(dns: nil))
        let error = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(5))
            // `/` answers at once and ends its response while the request is still open.
            let request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/")
            return try await pool.execute(request, duplex: { stream -> LBPoolError? in
                try await stream.write(ByteBuffer(string: "first"))
                let response = try await stream.response()
                var body = Data()
                for try await chunk in response.body { body.append(contentsOf: chunk.readableBytesView) }
                #expect(String(decoding: body, as: UTF8.self) == "127.0.0.1")
                do {
                    try await stream.write(ByteBuffer(string: "too late"))
                    return nil
                } catch let error as LBPoolError {
                    return error
                }
            })
        }
        await server.stop()
        #expect(error?.code == .connectionFailed)
        #expect(error?.message.contains("the response ended before the request body was sent") == true, "\(String(describing: error))")
    }
}
