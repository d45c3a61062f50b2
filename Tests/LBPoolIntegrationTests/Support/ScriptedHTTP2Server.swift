#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHPACK
import NIOPosix
import Synchronization

/// A TCP server on 127.0.0.1 that speaks HTTP/2 only as far as a test says, byte for byte: for
/// a client that must hold its own against a misbehaving server.
///
/// It parses what the client sends (the 24-byte preface, then frames) and records every frame
/// (``ClientFrame``); it writes only what the test writes, built with ``H2``. Nothing is answered
/// by itself, not even SETTINGS or PING: ``ScriptedConnection/handshake(settings:)`` and
/// ``ScriptedConnection/serve(body:)`` do the ordinary parts when a test wants them.
///
/// ```swift
/// let server = try await ScriptedHTTP2Server { connection in
///     try await connection.handshake()            // what every accepted connection does first
/// }
/// let first = try await server.connection(1)      // the test drives the first one itself
/// let request = try #require(await first.waitForFrame { $0.type == H2.FrameType.headers })
/// try await first.write(H2.data(stream: request.streamID, "x", endStream: true))
/// ```
final class ScriptedHTTP2Server: Sendable {
    typealias Script = @Sendable (ScriptedConnection) async throws -> Void

    let port: Int
    private let channel: any Channel
    private let state = Observed(ServerState())

    private struct ServerState: Sendable {
        var connections: [ScriptedConnection] = []
        var scripts: [Task<Void, Never>] = []
        var scriptFailures: [String] = []
    }

    /// Starts listening on a free port; `script` runs for every accepted connection, on its own
    /// task, which is cancelled by ``close()``.
    init(script: @escaping Script = { try await $0.handshake() }) async throws {
        let state = self.state
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // A small send buffer (the kernel doubles it): a flood's write completes only once the
            // client took most of what came before, so frames counted as written are close to
            // frames the client read, and a client that stops reading stalls the writes sooner.
            .childChannelOption(.socketOption(.so_sndbuf), value: 16 * 1024)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let record = Observed(ConnectionRecord())
                    try channel.pipeline.syncOperations.addHandler(ClientFrameReader(record: record))
                    state.update { server in
                        let connection = ScriptedConnection(number: server.connections.count + 1, channel: channel, record: record)
                        server.connections.append(connection)
                        server.scripts.append(
                            Task {
                                do {
                                    try await script(connection)
                                } catch {
                                    state.update { $0.scriptFailures.append("connection \(connection.number): \(error)") }
                                }
                            })
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.port = channel.localAddress?.port ?? 0
    }

    var connectionsAccepted: Int { state.read { $0.connections.count } }

    /// What the scripts threw, one line per failed script (a closed connection makes a write
    /// throw, which is usually expected).
    var scriptFailures: [String] { state.read { $0.scriptFailures } }

    /// The connection with that number (from 1, in order of arrival), once accepted.
    func connection(_ number: Int, timeout: Duration = .seconds(5)) async throws -> ScriptedConnection {
        let found = await state.wait(timeout: timeout) { server in
            server.connections.count >= number ? server.connections[number - 1] : nil
        }
        guard let found else { throw ScriptedServerError("no connection \(number) accepted within \(timeout)") }
        return found
    }

    /// Stops listening, cancels the scripts and closes every connection.
    func close() async {
        let (connections, scripts) = state.read { ($0.connections, $0.scripts) }
        for script in scripts { script.cancel() }
        try? await channel.close()
        for connection in connections { await connection.close() }
    }
}

struct ScriptedServerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - One connection

/// One accepted TCP connection: what the client sent, and ways to write to it.
final class ScriptedConnection: Sendable {
    /// From 1, in the order the server accepted the connections.
    let number: Int
    let channel: any Channel
    private let record: Observed<ConnectionRecord>
    /// Makes the HPACK blocks of this connection. Every field is a literal that is not indexed,
    /// so a block can be sent, dropped or sent twice without the two HPACK tables drifting apart.
    private let encoder = Mutex(HPACKEncoder(allocator: ByteBufferAllocator(), useHuffmanEncoding: false))
    private let pingCounter = Atomic<UInt64>(0x5C12_0000_0000_0000)

    fileprivate init(number: Int, channel: any Channel, record: Observed<ConnectionRecord>) {
        self.number = number
        self.channel = channel
        self.record = record
    }

    // MARK: What the client sent

    /// Every frame the client sent so far, in order.
    var frames: [ClientFrame] { record.read { $0.frames } }

    /// Whether the first 24 bytes were the client preface; `nil` until 24 bytes arrived.
    var prefaceValid: Bool? { record.read { $0.prefaceValid } }

    /// Whether the TCP connection is closed (by either side).
    var isClosed: Bool { record.read { $0.closed } }

    /// The first recorded frame that matches `predicate`, waiting for it until `timeout`; `nil`
    /// if none arrived before the connection closed or the timeout.
    func waitForFrame(timeout: Duration = .seconds(5), where predicate: (ClientFrame) -> Bool) async -> ClientFrame? {
        await record.wait(timeout: timeout) { record -> WaitResult<ClientFrame>? in
            if let frame = record.frames.first(where: predicate) { return .found(frame) }
            return record.closed ? .gone : nil
        }?.value
    }

    /// The frame at `index` (from 0) once it arrived; `nil` if the connection closed or
    /// `timeout` passed first.
    func frame(at index: Int, timeout: Duration = .seconds(5)) async -> ClientFrame? {
        await record.wait(timeout: timeout) { record -> WaitResult<ClientFrame>? in
            if record.frames.count > index { return .found(record.frames[index]) }
            return record.closed ? .gone : nil
        }?.value
    }

    /// Waits until the TCP connection closes; false if it is still open after `timeout`.
    func waitForClose(timeout: Duration = .seconds(5)) async -> Bool {
        await record.wait(timeout: timeout) { $0.closed ? true : nil } ?? false
    }

    // MARK: Writing

    /// Writes the frames (or any bytes) in one write and waits until they are written.
    func write(_ frames: ByteBuffer...) async throws {
        var bytes = channel.allocator.buffer(capacity: frames.reduce(0) { $0 + $1.readableBytes })
        for frame in frames { bytes.writeImmutableBuffer(frame) }
        try await channel.writeAndFlush(bytes).get()
    }

    /// Stops reading the socket (autoRead off): the client's bytes pile up in the kernel and,
    /// once its buffers are full, the client can write nothing more.
    func stopReading() async throws {
        try await channel.setOption(ChannelOptions.autoRead, value: false).get()
    }

    /// Closes the TCP connection.
    func close() async {
        try? await channel.close()
    }

    /// How a flood of one frame ended.
    enum FloodOutcome: Sendable, Equatable, CustomStringConvertible {
        /// Every frame was written: the client took them all.
        case completed(frames: Int)
        /// A write did not complete within the stall timeout: the client stopped reading.
        case stalled(afterFrames: Int)
        /// The connection closed, or a write failed because the client had closed it.
        case closed(afterFrames: Int)

        var description: String {
            switch self {
            case .completed(let frames): "all \(frames) frames written"
            case .stalled(let frames): "writes stalled after \(frames) frames"
            case .closed(let frames): "connection closed after \(frames) frames"
            }
        }

        /// Frames written (handed to the kernel) before the flood ended.
        var framesWritten: Int {
            switch self {
            case .completed(let frames), .stalled(let frames), .closed(let frames): frames
            }
        }
    }

    /// Writes `frame` `count` times, `framesPerWrite` at a time, each write waited for (so at
    /// most one write is queued in the server); stops when the connection closes, or when a write
    /// takes longer than `stallTimeout` (the client's receive buffer and the server's send
    /// buffer are full: the client stopped reading).
    func flood(_ frame: ByteBuffer, count: Int, framesPerWrite: Int = 100, stallTimeout: Duration = .seconds(2)) async -> FloodOutcome {
        var batch = channel.allocator.buffer(capacity: frame.readableBytes * framesPerWrite)
        for _ in 0..<framesPerWrite { batch.writeImmutableBuffer(frame) }
        var written = 0
        while written < count {
            if isClosed { return .closed(afterFrames: written) }
            let frames = min(framesPerWrite, count - written)
            let bytes = batch.getSlice(at: batch.readerIndex, length: frames * frame.readableBytes) ?? batch
            switch await writeOutcome(bytes, within: stallTimeout) {
            case .written: written += frames
            case .failed: return .closed(afterFrames: written)
            case .timedOut: return .stalled(afterFrames: written)
            }
        }
        return .completed(frames: written)
    }

    private enum WriteOutcome: Sendable {
        case written, failed, timedOut
    }

    /// Writes `bytes`; reports whether the write completed, failed or took longer than `timeout`
    /// (without waiting for it any longer: a stalled write stays queued until the channel closes).
    private func writeOutcome(_ bytes: ByteBuffer, within timeout: Duration) async -> WriteOutcome {
        let loop = channel.eventLoop
        let outcome = loop.makePromise(of: WriteOutcome.self)
        // The first completion wins; a promise ignores later ones.
        let timer = loop.scheduleTask(in: TimeAmount(timeout)) { outcome.succeed(.timedOut) }
        channel.writeAndFlush(bytes).whenComplete { result in
            timer.cancel()
            switch result {
            case .success: outcome.succeed(.written)
            case .failure: outcome.succeed(.failed)
            }
        }
        return (try? await outcome.futureResult.get()) ?? .failed
    }

    // MARK: HTTP/2 helpers

    /// An HPACK block of `fields`, in order, every one a literal without indexing (RFC 7541
    /// §6.2.2): values go on the wire as given, CR, LF and NUL included.
    func headerBlock(_ fields: [(String, String)]) -> ByteBuffer {
        var headers = HPACKHeaders()
        for (name, value) in fields { headers.add(name: name, value: value, indexing: .nonIndexable) }
        var block = ByteBuffer()
        encoder.withLock { encoder in
            // Only fails if an encoding is in progress, which `encode` never leaves behind.
            try? encoder.encode(headers: headers, to: &block)
        }
        return block
    }

    /// The ordinary start: the server's SETTINGS, then, once the client's preface and SETTINGS
    /// arrived, their acknowledgement.
    func handshake(settings: [(UInt16, UInt32)] = [(H2.Setting.maxConcurrentStreams, 100)]) async throws {
        try await write(H2.settings(settings))
        guard await waitForFrame(where: { $0.type == H2.FrameType.settings && !$0.isAck }) != nil else {
            throw ScriptedServerError("connection \(number): no SETTINGS from the client")
        }
        try await write(H2.settingsAck())
    }

    /// Writes `frames` and a PING after them, in one write, and waits for the PING's
    /// acknowledgement: the client reads in order, so whatever it sent in answer to `frames` is
    /// recorded by then. Returns false if the connection closed (or `timeout` passed) without the
    /// acknowledgement; the client then did not read on past `frames`.
    func pingRoundTrip(after frames: ByteBuffer..., timeout: Duration = .seconds(5)) async -> Bool {
        let opaque = pingCounter.add(1, ordering: .relaxed).newValue
        var bytes = channel.allocator.buffer(capacity: 64)
        for frame in frames { bytes.writeImmutableBuffer(frame) }
        bytes.writeImmutableBuffer(H2.ping(opaque))
        do {
            try await channel.writeAndFlush(bytes).get()
        } catch {
            return false
        }
        return await waitForFrame(timeout: timeout) { $0.type == H2.FrameType.ping && $0.isAck && $0.pingOpaque == opaque } != nil
    }

    /// Answers every request the client sends (a HEADERS or DATA frame with END_STREAM) with
    /// `200` and `body`, until the connection closes.
    func serve(body: String) async throws {
        var next = 0
        while !Task.isCancelled {
            guard let frame = await frame(at: next, timeout: .seconds(3600)) else { return }
            next += 1
            guard frame.type == H2.FrameType.headers || frame.type == H2.FrameType.data, frame.endStream else { continue }
            try await write(
                H2.headers(stream: frame.streamID, block: headerBlock([(":status", "200")])),
                H2.data(stream: frame.streamID, body, endStream: true))
        }
    }
}

/// What a wait over recorded state found: the thing, or that it will never come.
private enum WaitResult<Value: Sendable>: Sendable {
    case found(Value)
    case gone

    var value: Value? {
        if case .found(let value) = self { return value }
        return nil
    }
}

// MARK: - Frames the client sent

/// One frame the client sent, as it was on the wire.
struct ClientFrame: Sendable, CustomStringConvertible {
    let type: UInt8
    let flags: UInt8
    let streamID: UInt32
    let payload: ByteBuffer
    /// RST_STREAM and GOAWAY: the error code.
    let errorCode: UInt32?
    /// GOAWAY: the debug data, as UTF-8.
    let debugData: String?

    init(type: UInt8, flags: UInt8, streamID: UInt32, payload: ByteBuffer) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.payload = payload
        switch type {
        case H2.FrameType.rstStream:
            errorCode = payload.getInteger(at: payload.readerIndex, as: UInt32.self)
            debugData = nil
        case H2.FrameType.goAway:
            errorCode = payload.getInteger(at: payload.readerIndex + 4, as: UInt32.self)
            debugData = payload.readableBytes >= 8 ? payload.getString(at: payload.readerIndex + 8, length: payload.readableBytes - 8) : nil
        default:
            errorCode = nil
            debugData = nil
        }
    }

    var isAck: Bool { flags & H2.Flag.ack != 0 }
    var endStream: Bool { flags & H2.Flag.endStream != 0 }
    var endHeaders: Bool { flags & H2.Flag.endHeaders != 0 }

    /// GOAWAY: the last stream id.
    var lastStreamID: UInt32? {
        type == H2.FrameType.goAway ? payload.getInteger(at: payload.readerIndex, as: UInt32.self).map { $0 & 0x7FFF_FFFF } : nil
    }

    /// PING: the opaque data.
    var pingOpaque: UInt64? {
        type == H2.FrameType.ping ? payload.getInteger(at: payload.readerIndex, as: UInt64.self) : nil
    }

    /// WINDOW_UPDATE: the increment.
    var windowIncrement: UInt32? {
        type == H2.FrameType.windowUpdate ? payload.getInteger(at: payload.readerIndex, as: UInt32.self).map { $0 & 0x7FFF_FFFF } : nil
    }

    var isGoAway: Bool { type == H2.FrameType.goAway }

    func isRstStream(on stream: UInt32) -> Bool {
        type == H2.FrameType.rstStream && streamID == stream
    }

    var description: String {
        var text = "\(H2.name(ofFrameType: type))(stream \(streamID), flags 0x\(String(flags, radix: 16)), \(payload.readableBytes) bytes"
        if let errorCode { text += ", \(H2.name(ofErrorCode: errorCode))" }
        if let lastStreamID { text += ", last stream \(lastStreamID)" }
        if let debugData, !debugData.isEmpty { text += ", '\(debugData)'" }
        return text + ")"
    }
}

/// What one connection's reader recorded.
private struct ConnectionRecord: Sendable {
    var frames: [ClientFrame] = []
    var prefaceValid: Bool?
    var closed = false
}

/// Cuts the client's bytes into the preface and frames and records them. On the event loop.
private final class ClientFrameReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let record: Observed<ConnectionRecord>
    private var buffer = ByteBuffer()
    private var prefaceRead = false

    init(record: Observed<ConnectionRecord>) {
        self.record = record
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        var valid: Bool?
        if !prefaceRead, buffer.readableBytes >= 24 {
            prefaceRead = true
            valid = buffer.readString(length: 24) == H2.clientPreface
        }
        var frames: [ClientFrame] = []
        while prefaceRead, buffer.readableBytes >= 9,
            let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map({ Int($0 >> 8) }),
            buffer.readableBytes >= 9 + length
        {
            buffer.moveReaderIndex(forwardBy: 3)
            let type = buffer.readInteger(as: UInt8.self) ?? 0
            let flags = buffer.readInteger(as: UInt8.self) ?? 0
            let stream = (buffer.readInteger(as: UInt32.self) ?? 0) & 0x7FFF_FFFF
            let payload = buffer.readSlice(length: length) ?? ByteBuffer()
            frames.append(ClientFrame(type: type, flags: flags, streamID: stream, payload: payload))
        }
        buffer.discardReadBytes()
        guard valid != nil || !frames.isEmpty else { return }
        record.update { record in
            if let valid { record.prefaceValid = valid }
            record.frames.append(contentsOf: frames)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        record.update { $0.closed = true }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset by the client: the connection is over.
        context.close(promise: nil)
    }
}

// MARK: - Frame builders

/// HTTP/2 constants and raw frame builders (RFC 9113 §4.1 and §6): each function returns one
/// whole frame, 9-byte header and payload, with nothing checked.
enum H2 {
    static let clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    enum FrameType {
        static let data: UInt8 = 0x0
        static let headers: UInt8 = 0x1
        static let priority: UInt8 = 0x2
        static let rstStream: UInt8 = 0x3
        static let settings: UInt8 = 0x4
        static let pushPromise: UInt8 = 0x5
        static let ping: UInt8 = 0x6
        static let goAway: UInt8 = 0x7
        static let windowUpdate: UInt8 = 0x8
        static let continuation: UInt8 = 0x9
    }

    enum Flag {
        static let endStream: UInt8 = 0x1
        static let ack: UInt8 = 0x1
        static let endHeaders: UInt8 = 0x4
        static let padded: UInt8 = 0x8
        static let priority: UInt8 = 0x20
    }

    enum ErrorCode {
        static let noError: UInt32 = 0x0
        static let protocolError: UInt32 = 0x1
        static let internalError: UInt32 = 0x2
        static let flowControlError: UInt32 = 0x3
        static let streamClosed: UInt32 = 0x5
        static let frameSizeError: UInt32 = 0x6
        static let refusedStream: UInt32 = 0x7
        static let cancel: UInt32 = 0x8
        static let compressionError: UInt32 = 0x9
        static let enhanceYourCalm: UInt32 = 0xB
    }

    enum Setting {
        static let headerTableSize: UInt16 = 0x1
        static let enablePush: UInt16 = 0x2
        static let maxConcurrentStreams: UInt16 = 0x3
        static let initialWindowSize: UInt16 = 0x4
        static let maxFrameSize: UInt16 = 0x5
        static let maxHeaderListSize: UInt16 = 0x6
    }

    /// Any frame: the 9-byte header (length from `payload`) and the payload.
    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32, payload: ByteBuffer = ByteBuffer()) -> ByteBuffer {
        var frame = ByteBuffer()
        frame.reserveCapacity(9 + payload.readableBytes)
        let length = UInt32(payload.readableBytes)
        frame.writeInteger(UInt8(truncatingIfNeeded: length >> 16))
        frame.writeInteger(UInt16(truncatingIfNeeded: length))
        frame.writeInteger(type)
        frame.writeInteger(flags)
        frame.writeInteger(stream & 0x7FFF_FFFF)
        frame.writeImmutableBuffer(payload)
        return frame
    }

    static func settings(_ settings: [(UInt16, UInt32)] = []) -> ByteBuffer {
        var payload = ByteBuffer()
        for (identifier, value) in settings {
            payload.writeInteger(identifier)
            payload.writeInteger(value)
        }
        return frame(type: FrameType.settings, stream: 0, payload: payload)
    }

    static func settingsAck() -> ByteBuffer {
        frame(type: FrameType.settings, flags: Flag.ack, stream: 0)
    }

    /// HEADERS carrying `block` (see ``ScriptedConnection/headerBlock(_:)``).
    static func headers(stream: UInt32, block: ByteBuffer, endStream: Bool = false, endHeaders: Bool = true) -> ByteBuffer {
        let flags = (endStream ? Flag.endStream : 0) | (endHeaders ? Flag.endHeaders : 0)
        return frame(type: FrameType.headers, flags: flags, stream: stream, payload: block)
    }

    static func continuation(stream: UInt32, block: ByteBuffer = ByteBuffer(), endHeaders: Bool = false) -> ByteBuffer {
        frame(type: FrameType.continuation, flags: endHeaders ? Flag.endHeaders : 0, stream: stream, payload: block)
    }

    static func data(stream: UInt32, _ text: String = "", endStream: Bool = false) -> ByteBuffer {
        frame(type: FrameType.data, flags: endStream ? Flag.endStream : 0, stream: stream, payload: ByteBuffer(string: text))
    }

    static func ping(_ opaque: UInt64, ack: Bool = false) -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(opaque)
        return frame(type: FrameType.ping, flags: ack ? Flag.ack : 0, stream: 0, payload: payload)
    }

    static func windowUpdate(stream: UInt32, increment: UInt32) -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(increment & 0x7FFF_FFFF)
        return frame(type: FrameType.windowUpdate, stream: stream, payload: payload)
    }

    static func rstStream(stream: UInt32, code: UInt32) -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(code)
        return frame(type: FrameType.rstStream, stream: stream, payload: payload)
    }

    static func goAway(lastStreamID: UInt32, code: UInt32, debugData: String = "") -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(lastStreamID & 0x7FFF_FFFF)
        payload.writeInteger(code)
        payload.writeString(debugData)
        return frame(type: FrameType.goAway, stream: 0, payload: payload)
    }

    /// PRIORITY (deprecated by RFC 9113 §5.3.2, still to be parsed): a dependency and a weight.
    static func priority(stream: UInt32, dependsOn dependency: UInt32 = 0, weight: UInt8 = 15) -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(dependency & 0x7FFF_FFFF)
        payload.writeInteger(weight)
        return frame(type: FrameType.priority, stream: stream, payload: payload)
    }

    /// A frame of a type RFC 9113 does not define, which a receiver must ignore (§4.1, §5.5).
    static func unknown(type: UInt8 = 0xFA, flags: UInt8 = 0, stream: UInt32 = 0, payload: ByteBuffer = ByteBuffer()) -> ByteBuffer {
        frame(type: type, flags: flags, stream: stream, payload: payload)
    }

    static func name(ofFrameType type: UInt8) -> String {
        let names = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]
        return Int(type) < names.count ? names[Int(type)] : "UNKNOWN_0x\(String(type, radix: 16))"
    }

    static func name(ofErrorCode code: UInt32) -> String {
        let names = [
            "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
            "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
        ]
        return Int(code) < names.count ? names[Int(code)] : "0x\(String(code, radix: 16))"
    }
}

// MARK: - Waiting for state

/// A value that tasks can wait on: every change wakes the waiters, which then look again.
final class Observed<Value: Sendable>: Sendable {
    private struct Box: Sendable {
        var value: Value
        var version = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    private let box: Mutex<Box>

    init(_ value: Value) {
        box = Mutex(Box(value: value))
    }

    func read<T: Sendable>(_ body: (Value) -> T) -> T {
        box.withLock { body($0.value) }
    }

    @discardableResult
    func update<T: Sendable>(_ body: (inout Value) -> T) -> T {
        let (result, waiters) = box.withLock { box -> (T, [CheckedContinuation<Void, Never>]) in
            let result = body(&box.value)
            box.version += 1
            let waiters = Array(box.waiters.values)
            box.waiters.removeAll()
            return (result, waiters)
        }
        for waiter in waiters { waiter.resume() }
        return result
    }

    /// Waits until `check` returns a value, looking again after every change; `nil` once
    /// `timeout` passed or the task is cancelled.
    func wait<T: Sendable>(timeout: Duration, until check: (Value) -> T?) async -> T? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (found, version) = box.withLock { (check($0.value), $0.version) }
            if let found { return found }
            if ContinuousClock.now >= deadline || Task.isCancelled { return nil }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.change(after: version) }
                // The timeout, not a synchronisation: the change above is what is waited for.
                group.addTask { try? await Task.sleep(until: deadline) }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Returns once the value changed after `version` (at once if it already did), or when the
    /// task is cancelled.
    private func change(after version: Int) async {
        let id = box.withLock { box in
            box.nextWaiter += 1
            return box.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = box.withLock { box -> Bool in
                    // Cancelled before the handler could find the waiter: it must not wait.
                    if box.version != version || Task.isCancelled { return true }
                    box.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            box.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}

/// The resident memory of this process (VmRSS), in bytes, after giving freed memory back to the
/// system (so that memory freed by an earlier test does not hide growth); `nil` without /proc.
func residentMemoryBytes() -> Int? {
    #if canImport(Glibc)
    // malloc.h is not part of the Glibc module; RTLD_DEFAULT is the null handle.
    if let symbol = dlsym(nil, "malloc_trim") {
        _ = unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)(0)
    }
    #endif
    guard let file = fopen("/proc/self/status", "r") else { return nil }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("VmRSS:") {
            let kilobytes = text.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
            return kilobytes.map { $0 * 1024 }
        }
    }
    return nil
}
