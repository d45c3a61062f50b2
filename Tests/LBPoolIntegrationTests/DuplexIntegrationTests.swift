import Foundation
import HTTPTypes
import LBPool
import NIOCore
import Testing

/// Full-duplex streams against a real server that answers while the client is still sending.
@Suite(.serialized, .timeLimit(.minutes(2))) struct DuplexIntegrationTests {
    @Test(arguments: bothHTTPVersions)
    func aThousandRoundTripsOnOneStreamThenTrailersBothWays(_ httpVersion: LBPool.Configuration.HTTPVersion) async throws {
        // Node's http2 module, or over HTTP/1.1 its http module (the request body chunked, the
        // response too): `/echo` writes back each chunk as it arrives, then trailers.
        let port = try freePort()
        var http2Server: InteropBackend?
        var http1Server: NodeHTTP1Server?
        if httpVersion == .http2 {
            let server = try InteropBackend(.node, ip: "127.0.0.1", port: port)
            try await server.start()
            http2Server = server
        } else {
            http1Server = try await NodeHTTP1Server(ip: "127.0.0.1", port: port)
        }
        defer { withExtendedLifetime((http2Server, http1Server)) {} }
        let pool = try LBPool(
            target: "http://127.0.0.1:\(port)", configuration: testConfiguration(dns: nil, httpVersion: httpVersion))
        let (trailers, echoed) = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(5))
            let request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/echo")
            return try await pool.execute(
                request,
                duplex: { stream -> (HTTPFields?, Int) in
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
        #expect(echoed == 1000)
        #expect(trailers?[HTTPField.Name("x-chunks")!] == "1000", "\(String(describing: trailers))")
        let bytes = (0..<1000).map { "message \($0)\n".utf8.count }.reduce(0, +)
        #expect(trailers?[HTTPField.Name("x-bytes")!] == "\(bytes)")
        #expect(trailers?[HTTPField.Name("x-client-done")!] == "yes", "the request's trailers reached the server")
    }

    @Test func writingAfterTheServerEndedTheResponseFailsAndSaysSo() async throws {
        // nginx answers `return 200` without waiting for the request body.
        let port = try freePort()
        let server = try NginxBackend(ip: "127.0.0.1", port: port)
        try await server.start()
        defer { withExtendedLifetime(server) {} }
        let pool = try LBPool(target: "http://127.0.0.1:\(port)", configuration: testConfiguration(dns: nil))
        let error = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(5))
            let request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/")
            return try await pool.execute(
                request,
                duplex: { stream -> LBPoolError? in
                    // The response, whole, before anything of the body was written.
                    let response = try await stream.response()
                    var body = Data()
                    for try await chunk in response.body { body.append(contentsOf: chunk.readableBytesView) }
                    #expect(String(decoding: body, as: UTF8.self) == "127.0.0.1\n")
                    do {
                        try await stream.write(ByteBuffer(string: "too late"))
                        return nil
                    } catch let error as LBPoolError {
                        return error
                    }
                })
        }
        await server.quit()
        #expect(error?.code == .connectionFailed)
        #expect(error?.message.contains("request body not sent") == true, "\(String(describing: error))")
        #expect(
            error?.message.contains("the response ended") == true || error?.message.contains("RST_STREAM(NO_ERROR) after its complete response") == true,
            "the error says the server ended the exchange: \(String(describing: error))")
    }

    /// A scripted server that refuses the first stream it sees (RST_STREAM(REFUSED_STREAM), so
    /// not processed) — at once, or once a DATA frame of it arrived — and answers the next one
    /// with "second".
    static func refuseFirst(afterData: Bool) -> ScriptedHTTP2Server.Script {
        { connection in try await refuseFirst(connection, afterData: afterData) }
    }

    static func refuseFirst(_ connection: ScriptedConnection, afterData: Bool) async throws {
        try await connection.handshake()
        guard let first = await connection.waitForFrame(where: { $0.type == H2.FrameType.headers }) else { return }
        if afterData {
            guard await connection.waitForFrame(where: { $0.type == H2.FrameType.data && $0.streamID == first.streamID }) != nil else { return }
        }
        try await connection.write(H2.rstStream(stream: first.streamID, code: H2.ErrorCode.refusedStream))
        guard let second = await connection.waitForFrame(where: { $0.type == H2.FrameType.headers && $0.streamID != first.streamID }) else { return }
        try await connection.write(
            H2.headers(stream: second.streamID, block: connection.headerBlock([(":status", "200")])),
            H2.data(stream: second.streamID, "second", endStream: true))
    }

    func pool(_ server: ScriptedHTTP2Server) throws -> LBPool {
        var configuration = testConfiguration(dns: nil)
        configuration.requestTimeout = .seconds(5)
        return try LBPool(target: "http://127.0.0.1:\(server.port)", configuration: configuration)
    }

    @Test func aRefusedStreamWithNothingWrittenIsOpenedAgain() async throws {
        let server = try await ScriptedHTTP2Server(script: Self.refuseFirst(afterData: false))
        let body = try await withRunningPool(try pool(server)) { pool in
            try await pool.execute(
                HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/"),
                duplex: { stream in
                    let response = try await stream.response()
                    return try await String(buffer: response.body.collect(upTo: 100))
                })
        }
        let heads = try await server.connection(1).frames.filter { $0.type == H2.FrameType.headers }
        await server.close()
        #expect(body == "second")
        #expect(heads.count == 2, "opened again after the refusal: \(heads)")
    }

    @Test func aRefusedStreamWhoseBodyBeganIsNotSentAgain() async throws {
        let server = try await ScriptedHTTP2Server(script: Self.refuseFirst(afterData: true))
        let error = try await withRunningPool(try pool(server)) { pool in
            try await pool.execute(
                HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/"),
                duplex: { stream -> LBPoolError? in
                    try await stream.write(ByteBuffer(string: "gone with the first stream"))
                    do {
                        _ = try await stream.response()
                        return nil
                    } catch let error as LBPoolError {
                        return error
                    }
                })
        }
        let heads = try await server.connection(1).frames.filter { $0.type == H2.FrameType.headers }
        await server.close()
        #expect(error?.code == .connectionFailed, "\(String(describing: error))")
        #expect(heads.count == 1, "a stream whose body was written is not sent again: \(heads)")
    }
}
