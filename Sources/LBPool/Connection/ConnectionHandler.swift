import Logging
import NIOCore
import NIOHTTP2
import NIOSSL
import NIOTLS

/// Sits after `NIOHTTP2Handler` (which runs without a stream multiplexer) on a connection
/// channel. It turns what the wire says (SETTINGS, GOAWAY, the channel closing) into events for
/// the ``SubconnectionStateMachine``, whose actions it performs, and it carries the request
/// streams itself: a request is a table entry and a few frames, not a child channel
/// (see `ConnectionHandler+Streams.swift`). Lives on the channel's event loop.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// A request stream in flight.
    struct OpenStream {
        let response: ResponseStream
        /// The stream is reset if no response head arrived by then; `nil` once one did.
        var deadline: NIODeadline?
        var headReceived = false
    }

    private var machine = SubconnectionStateMachine()
    private var wasReady = false
    private var lastError: String?
    private var context: ChannelHandlerContext?
    private var readyTimeout: Scheduled<Void>?
    private var drainDeadline: Scheduled<Void>?
    private var keepaliveTimer: RepeatedTask?
    private var pingTimeout: Scheduled<Void>?
    private var pingCounter: UInt64 = 0
    var streams: [HTTP2StreamID: OpenStream] = [:]
    var nextStreamID = HTTP2StreamID(1)
    /// One timer per connection, at the earliest deadline of a stream still waiting for its
    /// response head (requests share a timeout, so a new stream rarely moves it).
    var streamDeadlineTimer: (at: NIODeadline, task: Scheduled<Void>)?
    /// The connection's inbound window is opened again to this size when it falls below half.
    let connectionWindowTarget: Int

    let id: SubconnectionID
    let address: ResolvedAddress
    private let shared: SubconnectionShared
    private let delegate: any SubconnectionDelegate
    private let requiresALPN: Bool
    private let readyTimeoutAmount: TimeAmount
    private let drainTimeout: TimeAmount
    private let keepalive: LBPool.Configuration.Keepalive?
    private let logger: Logger

    init(
        id: SubconnectionID,
        address: ResolvedAddress,
        shared: SubconnectionShared,
        delegate: any SubconnectionDelegate,
        requiresALPN: Bool,
        readyTimeout: Duration,
        drainTimeout: Duration,
        keepalive: LBPool.Configuration.Keepalive?,
        connectionWindowTarget: Int,
        logger: Logger
    ) {
        self.connectionWindowTarget = connectionWindowTarget
        self.id = id
        self.address = address
        self.shared = shared
        self.delegate = delegate
        self.requiresALPN = requiresALPN
        self.readyTimeoutAmount = TimeAmount(readyTimeout)
        self.drainTimeout = TimeAmount(drainTimeout)
        self.keepalive = keepalive
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        readyTimeout = context.eventLoop.scheduleTask(in: readyTimeoutAmount) {
            loopBound.value.readyTimedOut()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
        self.context = nil
    }

    private func cancelTimers() {
        readyTimeout?.cancel()
        drainDeadline?.cancel()
        keepaliveTimer?.cancel()
        pingTimeout?.cancel()
        streamDeadlineTimer?.task.cancel()
        streamDeadlineTimer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.streamID != .rootStream {
            streamFrameRead(frame)
            return
        }
        switch frame.payload {
        case .settings(.settings(let settings)):
            let limit = settings.last(where: { $0.parameter == .maxConcurrentStreams })?.value
            if let limit { shared.maxConcurrentStreams.store(limit, ordering: .relaxed) }
            perform(machine.settingsReceived(maxConcurrentStreams: limit))
        case .ping(_, ack: true):
            pingTimeout?.cancel()
            pingTimeout = nil
        case .goAway(let lastStreamID, let errorCode, let opaqueData):
            let last = Int(lastStreamID)
            shared.goAwayLastStreamID.store(min(last, shared.goAwayLastStreamID.load(ordering: .relaxed)), ordering: .relaxed)
            let debugData = opaqueData.map { String(buffer: $0) } ?? ""
            if errorCode != .noError {
                logger.warning("GOAWAY with error", metadata: [
                    "address": "\(address)", "subconnection": "\(id)", "code": "\(errorCode)",
                    "last_stream_id": "\(last)", "debug_data": "\(debugData)",
                ])
            }
            logger.debug("GOAWAY received", metadata: [
                "address": "\(address)", "subconnection": "\(id)", "code": "\(errorCode)",
                "last_stream_id": "\(last)", "open_streams": "\(machine.openStreams)",
            ])
            perform(machine.goAwayReceived(lastStreamID: last, errorCode: UInt32(errorCode.networkCode), debugData: debugData))
        default:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let closed = event as? StreamClosedEvent {
            streamClosedByConnection(closed)
            return
        }
        if let window = event as? NIOHTTP2WindowUpdatedEvent {
            if window.streamID == .rootStream, let size = window.inboundWindowSize { connectionWindowChanged(size) }
            return
        }
        if requiresALPN, let event = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = event, negotiated != "h2" {
            lastError = "server did not negotiate h2 with ALPN (got \(negotiated ?? "nothing"))"
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A frame of one stream refused on its way out: that stream fails, the connection stays.
        if let streamError = error as? NIOHTTP2Errors.StreamError {
            streamFailed(streamError.streamID, error: streamError.baseError)
            return
        }
        // A stream opened after GOAWAY surfaces as a connection error; the request that raced
        // the GOAWAY is retried elsewhere, and the streams still open must finish here.
        if error is NIOHTTP2Errors.CreatedStreamAfterGoaway { return }
        if error is NIOHTTP2Errors.StreamClosed || error is NIOHTTP2Errors.NoSuchStream { return }
        lastError = "\(error)"
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        failAllStreams(LBPoolError(.connectionFailed, "connection closed" + (lastError.map { ": \($0)" } ?? "")))
        perform(machine.channelClosed(error: lastError))
        context.fireChannelInactive()
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

    // MARK: - Keepalive

    private func startKeepalive(_ keepalive: LBPool.Configuration.Keepalive) {
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
        let ping = HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: pingCounter), ack: false))
        context.writeAndFlush(NIOAny(ping), promise: nil)
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
            shared.isAvailable.store(true, ordering: .releasing)
            if let keepalive { startKeepalive(keepalive) }
            delegate.subconnection(id, address: address, didReport: .ready)
        }
        if let reason = actions.notifyDraining {
            shared.isAvailable.store(false, ordering: .releasing)
            // Listeners hear it before any stream is torn down by the close below.
            shared.closing.fire(reason)
            delegate.subconnection(id, address: address, didReport: .draining(reason))
            if let context, !actions.closeChannel {
                let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                drainDeadline = context.eventLoop.scheduleTask(in: drainTimeout) {
                    loopBound.value.drainTimedOut()
                }
            }
        }
        if actions.closeChannel {
            context?.close(promise: nil)
        }
        if let reason = actions.notifyClosed {
            shared.isAvailable.store(false, ordering: .releasing)
            shared.closing.fire(reason)
            delegate.subconnection(id, address: address, didReport: .closed(reason, wasReady: wasReady))
        }
    }

    private func drainTimedOut() {
        shared.closedAtDrainDeadline.store(true, ordering: .relaxed)
        logger.debug("drain deadline reached; closing with streams open",
                     metadata: ["address": "\(address)", "subconnection": "\(id)", "open_streams": "\(machine.openStreams)"])
        perform(machine.abort(.connectionError("drain deadline reached")))
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
