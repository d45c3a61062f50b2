import HTTPTypes
import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// The client end of one HTTP/2 connection, on its channel after TLS (if any). It speaks
/// HTTP/2 itself: ``HTTP2FrameParser`` cuts the bytes into frames, ``HeaderBlockEncoder`` and
/// ``HeaderBlockDecoder`` code the header blocks, ``HTTP2SendWindows`` keeps outbound flow control, and the frames it writes collect
/// in one buffer that goes out once per event-loop tick. It turns what the wire says (SETTINGS,
/// GOAWAY, the channel closing) into events for the ``SubconnectionStateMachine``, whose actions
/// it performs, and it carries the request streams (see `ConnectionHandler+Streams.swift`).
/// Lives on the channel's event loop.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A request stream in flight.
    struct OpenStream {
        let response: ResponseStream
        /// The stream is reset if no response head arrived by then; `nil` once one did.
        var deadline: NIODeadline?
        var machine: HTTP2StreamStateMachine
        /// When the response last made progress (its head, or DATA); kept only with a
        /// ``HTTP2ClientLimits/responseBodyIdleTimeout``.
        var lastActivity: NIODeadline?
    }

    private var machine = SubconnectionStateMachine()
    private var wasReady = false
    private var lastError: String?
    private var context: ChannelHandlerContext?
    private var readyTimeout: Scheduled<Void>?
    private var drainDeadline: Scheduled<Void>?
    private var keepaliveTimer: RepeatedTask?
    private var idleTimer: RepeatedTask?
    private var pingTimeout: Scheduled<Void>?
    private var pingCounter: UInt64 = 0
    private var prefaceSent = false
    /// The server's first frame, which must be SETTINGS (RFC 9113 §3.4), has arrived.
    private var serverPrefaceSeen = false
    var streams: [HTTP2StreamNumber: OpenStream] = [:]
    /// Streams the client reset lately: the server may still send frames it sent before it saw
    /// the reset.
    var recentlyReset: [HTTP2StreamNumber] = []
    static let recentlyResetCapacity = 128
    /// Why a stream's request body can no longer be sent, for its writer's error.
    var closedReasons: [HTTP2StreamNumber: String] = [:]
    /// Streams that closed lately without both sides ending, and why.
    var recentlyClosed: [(stream: HTTP2StreamNumber, reason: String)] = []
    /// Response fields that passed the checks lately.
    private var acceptedFields = ResponseFieldCache()
    var nextStreamID: HTTP2StreamNumber = 1
    /// One timer per connection, at the earliest deadline of a stream still waiting for its
    /// response head (requests share a timeout, so a new stream rarely moves it).
    var streamDeadlineTimer: (at: NIODeadline, task: Scheduled<Void>)?

    // HTTP/2 state.
    private var parser = HTTP2FrameParser()
    var sendWindows = HTTP2SendWindows()
    var encoder = HeaderBlockEncoder()
    private var decoder = HeaderBlockDecoder()
    /// The server's SETTINGS_MAX_FRAME_SIZE.
    var peerMaxFrameSize = 16_384
    /// How much more DATA the server may send on the connection.
    private var connectionReceiveWindow = 65_535
    /// The connection's inbound window is opened again to this size when it falls below half.
    let connectionWindowTarget: Int
    /// Each stream's inbound window, sent as SETTINGS_INITIAL_WINDOW_SIZE.
    let streamWindow: Int
    /// The server's SETTINGS_MAX_HEADER_LIST_SIZE, once it sent one.
    var peerMaxHeaderListSize: Int?
    let limits: HTTP2ClientLimits
    private var glitches: HTTP2GlitchBudget
    /// The opaque data of the keepalive PING in flight.
    private var pingInFlight: UInt64?

    // Back-pressure on what the server makes the client owe (PING and SETTINGS ACKs, RST_STREAM).
    private var isWritable = true
    /// Owed frames written since the channel stopped being writable.
    private var owedWhileBlocked = 0
    /// A read the channel asked for while reads were held.
    private var readHeld = false
    /// GOAWAY went out already (a connection error): closing sends no second one.
    private var goAwaySent = false
    /// A connection error was raised: the GOAWAY naming it went out.
    private var connectionErrorSent = false
    /// A limit passed outside the read loop, raised as a connection error by the next frame.
    private var pendingViolation: HTTP2ConnectionError?

    // Output: frames collect here and go out in one write per event-loop tick.
    var output = ByteBuffer()
    private var flushScheduled = false
    /// Streams whose HEADERS are in `output`: their heads count as sent once it is written.
    var headsInOutput: [HTTP2StreamNumber] = []
    /// Promises of request-body chunks in `output`, kept until it is written.
    var promisesInOutput: [EventLoopPromise<Void>] = []
    /// Response heads read in this read, waiting for the body that may follow in it. Kept out
    /// of ``OpenStream`` so that the stream entries stay small to copy.
    var pendingHeads: [(stream: HTTP2StreamNumber, head: HTTPResponse, length: Int?)] = []

    let id: SubconnectionID
    let address: ResolvedAddress
    private let shared: SubconnectionShared
    private let reporter: ConnectionReporter
    private let requiresALPN: Bool
    private let readyTimeoutAmount: TimeAmount
    private let drainTimeout: TimeAmount
    private let keepalive: KeepaliveSettings?
    private let logger: Logger

    init(
        id: SubconnectionID,
        address: ResolvedAddress,
        shared: SubconnectionShared,
        delegate: any SubconnectionDelegate,
        requiresALPN: Bool,
        readyTimeout: Duration,
        drainTimeout: Duration,
        keepalive: KeepaliveSettings?,
        streamWindow: Int,
        connectionWindowTarget: Int,
        limits: HTTP2ClientLimits = HTTP2ClientLimits(),
        logger: Logger
    ) {
        self.limits = limits
        self.parser = HTTP2FrameParser(maxContinuationFrames: limits.maxContinuationFrames)
        self.glitches = HTTP2GlitchBudget(
            burst: limits.glitchBurst, perSecond: limits.glitchesPerSecond, now: NIODeadline.now().uptimeNanoseconds.clampedToInt64)
        self.streamWindow = streamWindow
        self.connectionWindowTarget = connectionWindowTarget
        self.id = id
        self.address = address
        self.shared = shared
        self.reporter = ConnectionReporter(id: id, address: address, shared: shared, delegate: delegate)
        self.requiresALPN = requiresALPN
        self.readyTimeoutAmount = TimeAmount(readyTimeout)
        self.drainTimeout = TimeAmount(drainTimeout)
        self.keepalive = keepalive
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        output = context.channel.allocator.buffer(capacity: 4096)
        streams.reserveCapacity(128)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        readyTimeout = context.eventLoop.scheduleTask(in: readyTimeoutAmount) {
            loopBound.value.readyTimedOut()
        }
        if context.channel.isActive { sendPreface() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        sendPreface()
        context.fireChannelActive()
    }

    /// The connection preface, the client's SETTINGS and the connection window opened to its
    /// target (RFC 9113 §3.4, §6.5, §6.9.2).
    private func sendPreface() {
        guard !prefaceSent else { return }
        prefaceSent = true
        output.writeImmutableBuffer(.http2ClientPreface)
        output.writeHTTP2Settings([
            (HTTP2SettingID.enablePush, 0),
            (HTTP2SettingID.maxConcurrentStreams, 100),
            (HTTP2SettingID.initialWindowSize, UInt32(streamWindow)),
            (HTTP2SettingID.maxHeaderListSize, UInt32(limits.maxHeaderListSize)),
        ])
        output.writeHTTP2WindowUpdate(stream: 0, increment: connectionWindowTarget - connectionReceiveWindow)
        connectionReceiveWindow = connectionWindowTarget
        flushOutput()
    }

    private func cancelTimers() {
        readyTimeout?.cancel()
        drainDeadline?.cancel()
        keepaliveTimer?.cancel()
        idleTimer?.cancel()
        pingTimeout?.cancel()
        streamDeadlineTimer?.task.cancel()
        streamDeadlineTimer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if !serverPrefaceSeen, bytes.readableBytesView.starts(with: "HTTP/".utf8) {
            // An HTTP/1 server (an h2c URL on a port without HTTP/2, or TLS without ALPN h2).
            let line =
                bytes.getString(at: bytes.readerIndex, length: min(bytes.readableBytes, 64))?
                .split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            connectionError(
                HTTP2ConnectionError(
                    code: .protocolError, message: "the server answered in HTTP/1 ('\(line)'), not HTTP/2 (for an HTTP/1.1 service set httpVersion to .http1)"))
            return
        }
        parser.append(bytes)
        do throws(HTTP2ConnectionError) {
            while let frame = try parser.next() {
                try read(frame)
            }
            try spendGlitch(parser.takeIgnoredFrames())
            if let pendingViolation { throw pendingViolation }
        } catch {
            connectionError(error)
        }
    }

    // MARK: - Back-pressure

    /// Owed answers past which reads are held while the channel is not writable. A few are
    /// normal (a keepalive PING during a large upload); holding reads for them could stall a
    /// server that itself stops reading while it cannot write.
    static let owedBeforeHoldingReads = 64

    /// Reads are held while the client owes the server more answers than it can write: a
    /// server that sends and does not read would otherwise make the client queue answers
    /// without end.
    func read(context: ChannelHandlerContext) {
        if !isWritable, owedWhileBlocked >= min(Self.owedBeforeHoldingReads, limits.maxOwedControlFrames) {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        if isWritable {
            owedWhileBlocked = 0
            if readHeld {
                readHeld = false
                context.read()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    /// Counts `count` frames the server made the client owe; past the limit while the server
    /// does not read, the connection closes.
    func owe(_ count: Int) {
        guard !isWritable else { return }
        owedWhileBlocked += count
        if owedWhileBlocked > limits.maxOwedControlFrames {
            pendingViolation =
                pendingViolation
                ?? HTTP2ConnectionError(
                    code: .enhanceYourCalm,
                    message: "more than \(limits.maxOwedControlFrames) PING, SETTINGS and RST_STREAM answers owed while the server does not read")
        }
    }

    /// Spends the glitch budget; throws once it is gone.
    func spendGlitch(_ count: Int = 1) throws(HTTP2ConnectionError) {
        guard count > 0 else { return }
        guard glitches.spend(count, now: NIODeadline.now().uptimeNanoseconds.clampedToInt64) else {
            throw HTTP2ConnectionError(
                code: .enhanceYourCalm,
                message:
                    "more than \(limits.glitchBurst) frames that do nothing useful (floods of PING, SETTINGS, PRIORITY, empty or unknown frames, frames on closed streams), above \(limits.glitchesPerSecond) per second"
            )
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        deliverPendingHeads()
        // Answers to what was read (SETTINGS ACK, WINDOW_UPDATE, RST_STREAM) go out now.
        if output.readableBytes > 0 { flushOutput() }
        context.fireChannelReadComplete()
    }

    private func read(_ frame: HTTP2InboundFrame) throws(HTTP2ConnectionError) {
        if let pendingViolation {
            self.pendingViolation = nil
            throw pendingViolation
        }
        if !serverPrefaceSeen {
            guard case .settings = frame else {
                throw HTTP2ConnectionError(code: .protocolError, message: "the server's first frame was not SETTINGS")
            }
            serverPrefaceSeen = true
        }
        switch frame {
        case .data(let stream, let data, let endStream, let flowControlledLength):
            try dataRead(data, on: stream, endStream: endStream, flowControlledLength: flowControlledLength)
        case .headers(let stream, let block, let endStream):
            guard stream % 2 == 1, stream < nextStreamID else {
                throw HTTP2ConnectionError(code: .protocolError, message: "HEADERS on stream \(stream), which the client did not open")
            }
            // Every header block is decoded, even of a stream already gone: HPACK state is
            // shared by the connection.
            var fields = ResponseHead(streams[stream]?.machine.expectsTrailers == true ? .trailers : .head, maxListSize: limits.maxHeaderListSize)
            do {
                try decoder.decode(block) { name, value in fields.add(name, value, cache: &acceptedFields) }
            } catch {
                throw HTTP2ConnectionError(code: .compressionError, message: "header block of stream \(stream): \(error)")
            }
            try headersRead(fields, on: stream, endStream: endStream)
        case .rstStream(let stream, let code):
            try resetRead(code, on: stream)
        case .settings(let settings):
            // The first SETTINGS is the preface; each later one costs an acknowledgement.
            if machine.state != .connecting { try spendGlitch() }
            try settingsRead(settings)
        case .settingsAck:
            break
        case .ping(let opaque, ack: true):
            guard opaque == pingInFlight else {
                // An acknowledgement of a PING the client never sent (or answered already).
                try spendGlitch()
                return
            }
            pingInFlight = nil
            pingTimeout?.cancel()
            pingTimeout = nil
        case .ping(let opaque, ack: false):
            try spendGlitch()
            output.writeHTTP2Ping(opaque: opaque, ack: true)
            owe(1)
        case .goAway(let lastStreamID, let code, let debugData):
            if let previous = machine.goAwayLastStreamID, Int(lastStreamID) > previous {
                throw HTTP2ConnectionError(code: .protocolError, message: "GOAWAY raised the last stream id from \(previous) to \(lastStreamID)")
            }
            goAwayRead(lastStreamID: lastStreamID, code: code, debugData: String(buffer: debugData))
        case .windowUpdate(0, let increment):
            try sendWindows.connectionWindowUpdate(Int(increment))
            sendPendingData()
        case .windowUpdate(let stream, let increment):
            try windowUpdateRead(increment, on: stream)
        }
    }

    private func settingsRead(_ settings: [(identifier: UInt16, value: UInt32)]) throws(HTTP2ConnectionError) {
        var limit: UInt32?
        for (identifier, value) in settings {
            switch identifier {
            case HTTP2SettingID.enablePush:
                // A server may only say 0 (RFC 9113 §6.5.2).
                guard value == 0 else {
                    throw HTTP2ConnectionError(code: .protocolError, message: "SETTINGS_ENABLE_PUSH \(value) from a server")
                }
            case HTTP2SettingID.maxHeaderListSize:
                peerMaxHeaderListSize = Int(value)
            case HTTP2SettingID.headerTableSize:
                encoder.setMaxSize(Int(value))
            case HTTP2SettingID.maxConcurrentStreams:
                limit = value
            case HTTP2SettingID.initialWindowSize:
                try sendWindows.initialWindowChanged(to: value)
            case HTTP2SettingID.maxFrameSize:
                guard (16_384...16_777_215).contains(value) else {
                    throw HTTP2ConnectionError(code: .protocolError, message: "SETTINGS_MAX_FRAME_SIZE \(value) outside 16384...16777215")
                }
                peerMaxFrameSize = Int(value)
                sendWindows.maxFrameSize = Int(value)
            default:
                break
            }
        }
        output.writeHTTP2SettingsAck()
        owe(1)
        sendPendingData()
        if let limit { shared.maxConcurrentStreams.store(Int(limit), ordering: .relaxed) }
        perform(machine.settingsReceived(maxConcurrentStreams: limit.map(Int.init)))
    }

    /// DATA of `bodyBytes` on stream `id` used `length` bytes of the connection's inbound window:
    /// opens it again once half is used, unless the window still holds all that the open streams
    /// have left to send. Returns false if the server sent beyond it.
    func connectionWindowUsed(_ length: Int, bodyBytes: Int = 0, on id: HTTP2StreamNumber? = nil) -> Bool {
        connectionReceiveWindow -= length
        guard connectionReceiveWindow >= 0 else { return false }
        if connectionReceiveWindow < connectionWindowTarget / 2, !windowHoldsWhatIsLeft(after: bodyBytes, on: id) {
            output.writeHTTP2WindowUpdate(stream: 0, increment: connectionWindowTarget - connectionReceiveWindow)
            connectionReceiveWindow = connectionWindowTarget
        }
        return true
    }

    /// Whether every stream the server may still send on declared its body's length, and the
    /// connection window holds what is left of them (after `bytes` just read on `id`) with the
    /// streams' padding slack: an update would then only be written to a server that may close
    /// the connection after its last DATA frame. A stream opened later is checked on its DATA.
    private func windowHoldsWhatIsLeft(after bytes: Int, on id: HTTP2StreamNumber?) -> Bool {
        var needed = 0
        for (streamID, stream) in streams where stream.machine.remoteOpen {
            guard let left = stream.machine.bodyBytesLeft else { return false }
            needed += left - (streamID == id ? bytes : 0) + HTTP2StreamStateMachine.paddingSlack
            if needed > connectionReceiveWindow { return false }
        }
        return !streams.isEmpty
    }

    private func goAwayRead(lastStreamID: HTTP2StreamNumber, code: HTTP2Code, debugData: String) {
        let last = Int(lastStreamID)
        shared.goAwayLastStreamID.store(min(last, shared.goAwayLastStreamID.load(ordering: .relaxed)), ordering: .relaxed)
        if code != .noError {
            logger.warning(
                "GOAWAY with error",
                metadata: [
                    "address": "\(address)", "subconnection": "\(id)", "code": "\(code)",
                    "last_stream_id": "\(last)", "debug_data": "\(debugData)",
                ])
        }
        logger.debug(
            "GOAWAY received",
            metadata: [
                "address": "\(address)", "subconnection": "\(id)", "code": "\(code)",
                "last_stream_id": "\(last)", "open_streams": "\(machine.openStreams)",
            ])
        // Streams above the last one the server processes were never seen: they fail as refused
        // and are sent again elsewhere (RFC 9113 §6.8).
        for stream in streams.keys.sorted() where stream > lastStreamID {
            closeStream(stream, error: HTTP2StreamReset(stream: stream, code: .refusedStream, byServer: true))
        }
        perform(machine.goAwayReceived(lastStreamID: last, errorCode: code, debugData: debugData))
    }

    /// A connection error: GOAWAY with its code, then close (RFC 9113 §5.4.1). The server
    /// broke the protocol or a limit: the pool hears it as such.
    private func connectionError(_ error: HTTP2ConnectionError) {
        guard !connectionErrorSent else { return }
        connectionErrorSent = true
        lastError = error.description
        logger.warning("HTTP/2 connection error: closing", metadata: ["address": "\(address)", "subconnection": "\(id)", "error": "\(error)"])
        output.writeHTTP2GoAway(lastStreamID: 0, code: error.code, debugData: error.message)
        goAwaySent = true
        flushOutput()
        perform(machine.abort(.protocolViolation(error.code, error.message)))
        context?.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if requiresALPN, let event = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = event, negotiated != "h2" {
            lastError = "server did not negotiate h2 with ALPN (got \(negotiated ?? "nothing"))"
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        lastError = "\(error)"
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        failAllStreams(ConnectionClosedError("connection closed" + (lastError.map { ": \($0)" } ?? "")))
        perform(machine.channelClosed(error: lastError))
        context.fireChannelInactive()
    }

    // MARK: - Output

    /// Writes and flushes the collected frames at the end of this event-loop tick, after the
    /// tasks and reads already queued: one `write` for every request of the tick.
    func scheduleFlush() {
        guard !flushScheduled, let context else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            loopBound.value.flushOutput()
        }
    }

    /// Writes and flushes the collected frames now.
    func flushOutput() {
        flushScheduled = false
        guard let context, output.readableBytes > 0 else { return }
        var promise: EventLoopPromise<Void>?
        if !headsInOutput.isEmpty || !promisesInOutput.isEmpty {
            let heads = headsInOutput, promises = promisesInOutput
            headsInOutput.removeAll(keepingCapacity: true)
            promisesInOutput.removeAll(keepingCapacity: true)
            let written = context.eventLoop.makePromise(of: Void.self)
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            written.futureResult.whenComplete { result in
                loopBound.value.outputWritten(heads: heads, promises: promises, result)
            }
            promise = written
        }
        context.writeAndFlush(wrapOutboundOut(output), promise: promise)
        // Written at once unless the socket is full; then this copies on the next write.
        output.clear()
    }

    // MARK: - Calls from streams and the owner, on the event loop

    /// Counts a stream that opened; the connection does not close under it.
    func streamOpened() {
        machine.streamOpened()
    }

    /// Counts a stream that ended; a draining connection closes after its last.
    func streamEnded() {
        perform(machine.streamClosed())
    }

    /// Streams open on the connection, and how many the server allows at once.
    var openStreamCount: Int { machine.openStreams }
    var peerMaxConcurrentStreams: Int { machine.maxConcurrentStreams }

    /// Whether new streams may open: ready, and not going away.
    var acceptsStreams: Bool {
        machine.state == .ready
    }

    var channelContext: ChannelHandlerContext? {
        context
    }

    func drain(_ reason: ConnectionCloseReason) {
        perform(machine.drainRequested(reason))
    }

    private func readyTimedOut() {
        guard machine.state == .connecting else { return }
        lastError = "no HTTP/2 SETTINGS from the server within the connect timeout"
        context?.close(promise: nil)
    }

    // MARK: - Idle response bodies

    /// Checks, a few times per `timeout`, for response bodies that stopped: one timer per
    /// connection, none per stream.
    private func startIdleChecks(_ timeout: Duration) {
        guard let context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let period = TimeAmount.nanoseconds(max(TimeAmount(timeout).nanoseconds / 4, 10_000_000))
        idleTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            loopBound.value.resetIdleBodies(timeout)
        }
    }

    private func resetIdleBodies(_ timeout: Duration) {
        guard let context else { return }
        let now = context.eventLoop.now, limit = TimeAmount(timeout)
        let idle = streams.compactMap { id, stream -> HTTP2StreamNumber? in
            guard stream.machine.response == .body, let last = stream.lastActivity else { return nil }
            return now - last >= limit ? id : nil
        }
        for id in idle {
            resetStream(id, code: .cancel, error: ResponseBodyIdle(timeout: timeout))
        }
    }

    // MARK: - Keepalive

    private func startKeepalive(_ keepalive: KeepaliveSettings) {
        guard let context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        keepaliveTimer = context.eventLoop.scheduleRepeatedTask(
            initialDelay: TimeAmount(keepalive.interval), delay: TimeAmount(keepalive.interval)
        ) { _ in
            loopBound.value.sendPing()
        }
    }

    private func sendPing() {
        guard let context, let keepalive, pingTimeout == nil, machine.state == .ready else { return }
        guard keepalive.permitWithoutStreams || machine.openStreams > 0 else { return }
        pingCounter &+= 1
        pingInFlight = pingCounter
        output.writeHTTP2Ping(opaque: pingCounter, ack: false)
        flushOutput()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        pingTimeout = context.eventLoop.scheduleTask(in: TimeAmount(keepalive.timeout)) {
            loopBound.value.keepaliveTimedOut()
        }
    }

    private func keepaliveTimedOut() {
        logger.warning("keepalive PING unanswered; closing", metadata: ["address": "\(address)", "subconnection": "\(id)"])
        perform(machine.abort(.keepaliveTimeout))
    }

    // MARK: - Actions

    private func perform(_ actions: SubconnectionStateMachine.Actions) {
        if actions.notifyReady {
            readyTimeout?.cancel()
            wasReady = true
            if let keepalive { startKeepalive(keepalive) }
            if let timeout = limits.responseBodyIdleTimeout { startIdleChecks(timeout) }
            reporter.ready()
        }
        if let reason = actions.notifyDraining {
            // Listeners hear it before any stream is torn down by the close below.
            reporter.draining(reason)
            if let context, !actions.closeChannel {
                let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                drainDeadline = context.eventLoop.scheduleTask(in: drainTimeout) {
                    loopBound.value.drainTimedOut()
                }
            }
        }
        if actions.closeChannel {
            if !goAwaySent {
                output.writeHTTP2GoAway(lastStreamID: 0, code: .noError, debugData: "")
                goAwaySent = true
            }
            flushOutput()
            context?.close(promise: nil)
        }
        if let reason = actions.notifyClosed {
            reporter.closed(reason, wasReady: wasReady)
        }
    }

    private func drainTimedOut() {
        shared.closedAtDrainDeadline.store(true, ordering: .relaxed)
        logger.debug(
            "drain deadline reached; closing with streams open",
            metadata: ["address": "\(address)", "subconnection": "\(id)", "open_streams": "\(machine.openStreams)"])
        perform(machine.abort(.connectionError("drain deadline reached")))
    }
}
