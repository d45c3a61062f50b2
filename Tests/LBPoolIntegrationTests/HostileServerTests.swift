import HTTPTypes
import LBPool
import NIOCore
import Testing

/// The pool against a server that misbehaves on purpose, one way per test, written frame by
/// frame with ``ScriptedHTTP2Server``. Each test states the rule of RFC 9113 the client must
/// enforce, and checks what the client sent back on the wire, not just what the caller saw.
///
/// Requests have a 2 s deadline and are not retried, so that a client that fails a check fails
/// the test quickly, with the request it got wrong.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HostileServerTests {
    static let requestTimeout = Duration.seconds(2)

    /// Runs `body` with a pool on a new scripted server; every connection runs `script` (by
    /// default, the handshake and nothing else).
    func withScriptedServer(
        script: @escaping ScriptedHTTP2Server.Script = { try await $0.handshake() },
        _ body: (ScriptedHTTP2Server, LBPool) async throws -> Void
    ) async throws {
        let server = try await ScriptedHTTP2Server(script: script)
        var configuration = testConfiguration(dns: nil)
        configuration.requestTimeout = Self.requestTimeout
        configuration.retryPolicy = .none
        configuration.drainTimeout = .seconds(1)
        do {
            let pool = try LBPool(target: "http://127.0.0.1:\(server.port)", configuration: configuration)
            try await withRunningPool(pool) { pool in try await body(server, pool) }
        } catch {
            await server.close()
            throw error
        }
        await server.close()
    }

    /// The handshake, then: the first connection is the test's; later ones answer every request
    /// with "connection N".
    static let firstIsTheTests: ScriptedHTTP2Server.Script = { connection in
        try await connection.handshake()
        if connection.number > 1 { try await connection.serve(body: "connection \(connection.number)") }
    }

    /// Starts a GET and returns it with the stream the client opened for it.
    func startRequest(_ pool: LBPool, on connection: ScriptedConnection, id: String) async throws -> (Task<LBPool.Response, any Error>, UInt32) {
        let known = Set(connection.frames.filter { $0.type == H2.FrameType.headers }.map(\.streamID))
        let request = Task { try await pool.execute(get(id: id)) }
        let headers = try #require(
            await connection.waitForFrame { $0.type == H2.FrameType.headers && !known.contains($0.streamID) },
            "the client sent no request HEADERS")
        return (request, headers.streamID)
    }

    /// The client's GOAWAY: recorded already, or the one that comes before the connection closes
    /// (within 2 s). With `answered`, a PING after the misbehaviour was answered, so a GOAWAY
    /// for it is recorded already if there is one: nothing is waited for.
    func goAway(from connection: ScriptedConnection, answered: Bool = false) async -> ClientFrame? {
        if answered { return connection.frames.first { $0.isGoAway } }
        return await connection.waitForFrame(timeout: .seconds(2)) { $0.isGoAway }
    }

    func okHead(_ connection: ScriptedConnection, _ stream: UInt32, endStream: Bool = true, _ fields: [(String, String)] = []) -> ByteBuffer {
        H2.headers(stream: stream, block: connection.headerBlock([(":status", "200")] + fields), endStream: endStream)
    }

    static let evil = HTTPField.Name("x-evil")!

    // MARK: a. CONTINUATION flood

    /// RFC 9113 §6.10 and §10.5: a header block may be cut into any number of CONTINUATION
    /// frames, and an endpoint must bound what it spends on one ("An endpoint MUST treat ... a
    /// header block it cannot process as a connection error"; §10.5: limits on CONTINUATION
    /// that carry nothing). A server that sends HEADERS without END_HEADERS and then empty
    /// CONTINUATION frames forever must be cut off: GOAWAY (PROTOCOL_ERROR or ENHANCE_YOUR_CALM)
    /// and close before the flood ends, and the next request goes to a new connection.
    @Test func endlessEmptyContinuationFramesAreCutOff() async throws {
        try await withScriptedServer(script: Self.firstIsTheTests) { server, pool in
            let first = try await server.connection(1)
            let (request, stream) = try await startRequest(pool, on: first, id: "continued")
            try await first.write(H2.headers(stream: stream, block: first.headerBlock([(":status", "200")]), endHeaders: false))
            // 500 000 frames (4.5 MB): more than the kernel buffers between the two, so a flood
            // that ends `.closed` was cut off by the client, however late it read.
            let flood = await first.flood(H2.continuation(stream: stream), count: 500_000, framesPerWrite: 1000)

            #expect(
                flood == .closed(afterFrames: flood.framesWritten),
                "the client took endless empty CONTINUATION frames: \(flood)")
            let goAway = await goAway(from: first)
            #expect(
                goAway.flatMap(\.errorCode).map { [H2.ErrorCode.protocolError, H2.ErrorCode.enhanceYourCalm].contains($0) } == true,
                "GOAWAY(PROTOCOL_ERROR or ENHANCE_YOUR_CALM) expected; the client sent \(first.frames)")
            #expect(await first.waitForClose(timeout: .seconds(1)), "the client left the connection open")

            let result = await request.result
            #expect((try? result.get()) == nil, "a response whose head never ended cannot succeed")
            let error = result.error as? LBPoolError
            #expect(error?.code != .deadlineExceeded, "the request hung to its deadline: \(String(describing: result.error))")

            let start = ContinuousClock.now
            let after = await Result.of { try await pool.execute(get(id: "after")) }
            #expect(after.body == "connection 2", "the next request did not go to a new connection: \(after.summary)")
            #expect(ContinuousClock.now - start < Self.requestTimeout, "the next request took \(ContinuousClock.now - start)")
        }
    }

    // MARK: b. Floods of frames that each need an answer

    enum AnsweredFlood: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case ping, settings
        var testDescription: String { rawValue.uppercased() }

        var frame: ByteBuffer {
            switch self {
            case .ping: H2.ping(0xF100D)
            case .settings: H2.settings()
            }
        }

        /// About 20 MB, some four times what a client that stops reading lets in: the kernel
        /// buffers on loopback take about 4 MiB of its answers (its send buffer, up to tcp_wmem's
        /// 4 MiB) and some 300 KiB of the flood (its receive buffer, and the server's send
        /// buffer, 32 KiB). Today's client takes all of it, in 10 to 15 s.
        var count: Int {
            switch self {
            case .ping: 1_200_000  // 17 bytes each
            case .settings: 2_000_000  // 9 bytes each
            }
        }
    }

    /// RFC 9113 §6.7 (PING: "Receivers of a PING frame that does not include an ACK flag MUST
    /// send a PING frame with the ACK flag set in response") and §6.5.3 (SETTINGS: "Upon
    /// receiving ... the recipient MUST immediately emit a SETTINGS frame with the ACK flag set")
    /// together with §10.5 (an endpoint must limit what a peer can make it spend): a server that
    /// sends such frames without end and reads nothing must not make the client queue answers
    /// without bound. The client must close the connection, or stop reading until its answers
    /// can be written: the server's writes then stall (or fail) before the flood of about 20 MB
    /// is written; and the process grows by less than 16 MiB meanwhile.
    @Test(arguments: AnsweredFlood.allCases)
    func aFloodOfFramesEachNeedingAnAnswerIsNotAnsweredIntoAnUnboundedQueue(_ kind: AnsweredFlood) async throws {
        try await withScriptedServer { server, pool in
            try await pool.waitUntilReady(timeout: .seconds(5))
            let first = try await server.connection(1)
            // The handshake is over once the client acknowledged the server's SETTINGS.
            _ = await first.waitForFrame { $0.type == H2.FrameType.settings && $0.isAck }
            try await first.stopReading()
            let before = residentMemoryBytes() ?? 0
            let start = ContinuousClock.now
            let flood = await first.flood(kind.frame, count: kind.count, framesPerWrite: 4096, stallTimeout: .seconds(3))
            let growth = (residentMemoryBytes() ?? 0) - before
            let summary = "\(flood) of \(kind.count) in \(ContinuousClock.now - start); resident memory grew \(growth >> 20) MiB"

            #expect(flood != .completed(frames: kind.count), "the client read the whole flood while its answers piled up: \(summary)")
            #expect(growth < 16 << 20, "\(summary)")
            await first.close()
        }
    }

    // MARK: c. CR, LF or NUL in a field value

    enum ForbiddenCharacter: UInt8, CaseIterable, Sendable, CustomTestStringConvertible {
        case cr = 0x0D, lf = 0x0A, nul = 0x00
        var testDescription: String { "\(self)".uppercased() }
    }

    /// RFC 9113 §8.2.1: "A field value MUST NOT contain the zero value (ASCII NUL, 0x00), line
    /// feed (ASCII LF, 0x0a), or carriage return (ASCII CR, 0x0d) at any position", and §8.1.1:
    /// a malformed response is a stream error of type PROTOCOL_ERROR. The client must reset the
    /// stream with PROTOCOL_ERROR and fail the request; the caller never sees the field, with
    /// the character or with a space in its place.
    @Test(arguments: ForbiddenCharacter.allCases)
    func aResponseFieldValueWithAForbiddenCharacterIsMalformed(_ character: ForbiddenCharacter) async throws {
        try await withScriptedServer { server, pool in
            let first = try await server.connection(1)
            let (request, stream) = try await startRequest(pool, on: first, id: "evil")
            let value = "a" + String(UnicodeScalar(character.rawValue)) + "b"
            let answered = await first.pingRoundTrip(after: okHead(first, stream, [("x-evil", value)]))

            #expect(answered, "the connection died over a stream error")
            let reset = first.frames.first { $0.isRstStream(on: stream) }
            #expect(reset?.errorCode == H2.ErrorCode.protocolError, "RST_STREAM(PROTOCOL_ERROR) expected on stream \(stream); the client sent \(first.frames)")
            switch await request.result {
            case .success(let response):
                Issue.record("the request succeeded; the caller saw x-evil: \(String(reflecting: response.head.headerFields[Self.evil] ?? "nothing"))")
            case .failure(let error):
                #expect(error is LBPoolError, "\(error)")
            }
        }
    }

    // MARK: d. SETTINGS_ENABLE_PUSH from a server

    /// RFC 9113 §6.5.2: SETTINGS_ENABLE_PUSH "MUST NOT be sent by a server ... A client MUST
    /// treat receipt of a SETTINGS frame with SETTINGS_ENABLE_PUSH set to 1 as a connection error
    /// of type PROTOCOL_ERROR", and "Any value other than 0 or 1 MUST be treated as a connection
    /// error of type PROTOCOL_ERROR". The client sends GOAWAY(PROTOCOL_ERROR), closes, and never
    /// acknowledges those SETTINGS.
    @Test(arguments: [UInt32(1), 2])
    func serverSettingsWithEnablePushAreAConnectionError(_ value: UInt32) async throws {
        try await withScriptedServer(script: { try await $0.handshake(settings: [(H2.Setting.enablePush, value)]) }) { server, pool in
            let first = try await server.connection(1)
            let answer = await first.waitForFrame(timeout: .seconds(2)) { $0.isGoAway || ($0.type == H2.FrameType.settings && $0.isAck) }

            #expect(
                answer?.isGoAway == true && answer?.errorCode == H2.ErrorCode.protocolError,
                "GOAWAY(PROTOCOL_ERROR) expected first; the client sent \(first.frames)")
            #expect(
                !first.frames.contains { $0.type == H2.FrameType.settings && $0.isAck },
                "the client acknowledged SETTINGS_ENABLE_PUSH = \(value)")
            #expect(await first.waitForClose(timeout: .seconds(2)), "the client left the connection open")
        }
    }

    // MARK: e. DATA on a server-initiated stream

    /// RFC 9113 §5.1.1: "Streams initiated by a server MUST use even-numbered stream
    /// identifiers", and §5.1 (idle): "Receiving any frame other than HEADERS or PRIORITY on a
    /// stream in this state MUST be treated as a connection error of type PROTOCOL_ERROR". A
    /// client with push disabled never has an even stream: DATA on stream 2 gets
    /// GOAWAY(PROTOCOL_ERROR), and the client reads nothing after it.
    @Test func dataOnAnEvenStreamIsAConnectionError() async throws {
        try await withScriptedServer { server, pool in
            let first = try await server.connection(1)
            // With stream 1 open, stream 2 is below the client's next stream id.
            let (request, stream) = try await startRequest(pool, on: first, id: "held")
            let answered = await first.pingRoundTrip(after: H2.data(stream: 2, "pushed?"))

            #expect(!answered, "the client answered a PING sent after DATA on stream 2: it took the DATA")
            let goAway = await goAway(from: first, answered: answered)
            #expect(goAway?.errorCode == H2.ErrorCode.protocolError, "GOAWAY(PROTOCOL_ERROR) expected; the client sent \(first.frames)")
            // Ends the request if the connection is still open (a failed write: it just closed).
            try? await first.write(okHead(first, stream))
            _ = await request.result
        }
    }

    // MARK: f. WINDOW_UPDATE on an idle stream

    /// RFC 9113 §5.1 (idle): "Receiving any frame other than HEADERS or PRIORITY on a stream in
    /// this state MUST be treated as a connection error of type PROTOCOL_ERROR"; stream 7 is idle
    /// when the client opened only stream 1. WINDOW_UPDATE on it gets GOAWAY(PROTOCOL_ERROR).
    @Test func windowUpdateOnAnIdleStreamIsAConnectionError() async throws {
        try await withScriptedServer { server, pool in
            let first = try await server.connection(1)
            let (request, stream) = try await startRequest(pool, on: first, id: "first")
            try await first.write(okHead(first, stream))
            _ = try await request.value
            let answered = await first.pingRoundTrip(after: H2.windowUpdate(stream: stream + 6, increment: 1000))

            #expect(!answered, "the client answered a PING sent after WINDOW_UPDATE on idle stream \(stream + 6)")
            let goAway = await goAway(from: first, answered: answered)
            #expect(goAway?.errorCode == H2.ErrorCode.protocolError, "GOAWAY(PROTOCOL_ERROR) expected; the client sent \(first.frames)")
        }
    }

    // MARK: g. DATA on a stream closed normally

    /// RFC 9113 §6.1: "If a DATA frame is received whose stream is not in the open or
    /// half-closed (local) state, the recipient MUST respond with a stream error of type
    /// STREAM_CLOSED"; §5.1 (closed). After a request and its response both ended, DATA on that
    /// stream gets RST_STREAM(STREAM_CLOSED); the connection serves on.
    @Test func dataOnAStreamThatEndedIsAnsweredWithStreamClosed() async throws {
        try await withScriptedServer { server, pool in
            let first = try await server.connection(1)
            let (request, stream) = try await startRequest(pool, on: first, id: "first")
            try await first.write(okHead(first, stream, endStream: false), H2.data(stream: stream, "done", endStream: true))
            #expect(try await String(buffer: request.value.body) == "done")
            let answered = await first.pingRoundTrip(after: H2.data(stream: stream, "late"))

            #expect(answered, "the connection died over a stream error")
            let reset = first.frames.first { $0.isRstStream(on: stream) }
            #expect(reset?.errorCode == H2.ErrorCode.streamClosed, "RST_STREAM(STREAM_CLOSED) expected on stream \(stream); the client sent \(first.frames)")

            let (next, nextStream) = try await startRequest(pool, on: first, id: "next")
            try await first.write(okHead(first, nextStream, endStream: false), H2.data(stream: nextStream, "next", endStream: true))
            #expect(try await String(buffer: next.value.body) == "next")
            #expect(server.connectionsAccepted == 1)
        }
    }

    // MARK: h. WINDOW_UPDATE of 0 on a stream

    /// RFC 9113 §6.9: "A receiver MUST treat the receipt of a WINDOW_UPDATE frame with a
    /// flow-control window increment of 0 as a stream error of type PROTOCOL_ERROR", also on a
    /// stream with no request body to send (a GET awaiting its response): RST_STREAM
    /// (PROTOCOL_ERROR) on it, and the request fails though the server answers afterwards.
    @Test func windowUpdateOfZeroOnAStreamIsAStreamError() async throws {
        let result = try await streamErrorIgnoresTheLaterAnswer(id: "zero") { _, stream in
            H2.windowUpdate(stream: stream, increment: 0)
        }
        #expect(result.error is LBPoolError, "the request on the reset stream ended with \(result.summary)")
    }

    /// Starts a GET, sends the frame `trigger` makes for its stream, and checks that the client
    /// answered RST_STREAM(PROTOCOL_ERROR) with the connection alive; then answers the stream
    /// with 200 anyway (a client must ignore what arrives on a stream it reset, §5.1) and returns
    /// how the request ended.
    func streamErrorIgnoresTheLaterAnswer(
        id: String, _ trigger: (ScriptedConnection, UInt32) -> ByteBuffer
    ) async throws -> Result<LBPool.Response, any Error> {
        var outcome: Result<LBPool.Response, any Error>?
        try await withScriptedServer { server, pool in
            let first = try await server.connection(1)
            let (request, stream) = try await startRequest(pool, on: first, id: id)
            let answered = await first.pingRoundTrip(after: trigger(first, stream))

            #expect(answered, "the connection died over a stream error")
            let reset = first.frames.first { $0.isRstStream(on: stream) }
            #expect(reset?.errorCode == H2.ErrorCode.protocolError, "RST_STREAM(PROTOCOL_ERROR) expected on stream \(stream); the client sent \(first.frames)")
            try await first.write(okHead(first, stream, endStream: false), H2.data(stream: stream, "late", endStream: true))
            outcome = await request.result
        }
        return try #require(outcome)
    }

    // MARK: i. :status 101

    /// RFC 9113 §8.6: "HTTP/2 removes support for the 101 (Switching Protocols) informational
    /// status code", and §8.1.1: a malformed response is a stream error of type PROTOCOL_ERROR.
    /// A `:status 101` head gets RST_STREAM(PROTOCOL_ERROR) and the request fails at once, not at
    /// its deadline, and not with the 200 the server sends after it.
    @Test func status101IsAMalformedResponse() async throws {
        let result = try await streamErrorIgnoresTheLaterAnswer(id: "upgrade") { connection, stream in
            H2.headers(stream: stream, block: connection.headerBlock([(":status", "101")]))
        }
        #expect(result.error is LBPoolError, "a 101 response ended with \(result.summary)")
        #expect((result.error as? LBPoolError)?.code != .deadlineExceeded, "failed at its deadline: \(result.summary)")
    }

    // MARK: j. Floods of frames that are each harmless

    enum Glitch: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case priority, unknownType, emptyData
        var testDescription: String { rawValue }

        func frame(stream: UInt32) -> ByteBuffer {
            switch self {
            case .priority: H2.priority(stream: stream)
            case .unknownType: H2.unknown(type: 0xFA, stream: stream)
            case .emptyData: H2.data(stream: stream)
            }
        }
    }

    /// RFC 9113 §10.5: "An endpoint MAY treat activity that is suspicious as a connection error
    /// of type ENHANCE_YOUR_CALM" — PRIORITY frames (§5.3.2: to be parsed, otherwise ignored),
    /// frames of unknown type (§5.5: to be ignored) and empty DATA frames without END_STREAM are
    /// each harmless, and cost the client work without end. After a bounded number the client
    /// sends GOAWAY(ENHANCE_YOUR_CALM) and closes, before 100 000 of them.
    @Test(arguments: Glitch.allCases)
    func aFloodOfHarmlessFramesEndsWithEnhanceYourCalm(_ glitch: Glitch) async throws {
        try await withScriptedServer(script: Self.firstIsTheTests) { server, pool in
            let first = try await server.connection(1)
            let (request, stream) = try await startRequest(pool, on: first, id: "glitches")
            // With the head sent, the stream stays open to the end of the flood: the request's
            // deadline is for the head.
            try await first.write(okHead(first, stream, endStream: false))
            let flood = await first.flood(glitch.frame(stream: stream), count: 100_000, framesPerWrite: 200)

            #expect(flood == .closed(afterFrames: flood.framesWritten), "the client took every frame: \(flood)")
            let goAway = await goAway(from: first)
            #expect(goAway?.errorCode == H2.ErrorCode.enhanceYourCalm, "GOAWAY(ENHANCE_YOUR_CALM) expected; the client sent \(first.frames)")
            // Ends the request if the connection is still open (a failed write: it just closed).
            try? await first.write(H2.data(stream: stream, endStream: true))
            _ = await request.result
        }
    }

    // MARK: k. RST_STREAM(NO_ERROR) after the whole body

    /// RFC 9113 §8.1: a server "MAY request that the client abort transmission of a request
    /// without error by sending a RST_STREAM with an error code of NO_ERROR after sending a
    /// complete response"; Node sends it after the body its content-length declares, without
    /// END_STREAM. The response is complete: the request succeeds with the whole body.
    @Test func resetWithNoErrorAfterTheWholeBodyIsASuccess() async throws {
        try await withScriptedServer { server, pool in
            let first = try await server.connection(1)
            let (request, stream) = try await startRequest(pool, on: first, id: "node")
            try await first.write(
                okHead(first, stream, endStream: false, [("content-length", "5")]),
                H2.data(stream: stream, "hello"),
                H2.rstStream(stream: stream, code: H2.ErrorCode.noError))
            let result = await request.result
            #expect(result.body == "hello", "a complete response reset with NO_ERROR ended with \(result.summary)")
            #expect((try? result.get())?.head.status == .ok)
        }
    }
}

extension Result where Success == LBPool.Response, Failure == any Error {
    static func of(_ body: () async throws -> LBPool.Response) async -> Self {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    var error: (any Error)? {
        if case .failure(let error) = self { return error }
        return nil
    }

    /// The body, if the request succeeded.
    var body: String? {
        (try? get()).map { String(buffer: $0.body) }
    }

    var summary: String {
        switch self {
        case .success(let response): "success \(response.head.status.code) '\(String(buffer: response.body))'"
        case .failure(let error): "\(error)"
        }
    }
}
