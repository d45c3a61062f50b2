import Logging
import NIOCore
import NIOHTTP2
import NIOSSL
import NIOTLS

/// Sits after `NIOHTTP2Handler` on a connection channel and turns what the wire says (SETTINGS,
/// GOAWAY, streams opening and closing, the channel closing) into events for the
/// ``SubconnectionStateMachine``, whose actions it performs. Lives on the channel's event loop.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    private var machine = SubconnectionStateMachine()
    private var wasReady = false
    private var lastError: String?
    private var context: ChannelHandlerContext?
    private var readyTimeout: Scheduled<Void>?

    let id: SubconnectionID
    let address: ResolvedAddress
    private let shared: SubconnectionShared
    private let delegate: any SubconnectionDelegate
    private let requiresALPN: Bool
    private let readyTimeoutAmount: TimeAmount
    private let logger: Logger

    init(
        id: SubconnectionID,
        address: ResolvedAddress,
        shared: SubconnectionShared,
        delegate: any SubconnectionDelegate,
        requiresALPN: Bool,
        readyTimeout: Duration,
        logger: Logger
    ) {
        self.id = id
        self.address = address
        self.shared = shared
        self.delegate = delegate
        self.requiresALPN = requiresALPN
        self.readyTimeoutAmount = .nanoseconds(Int64(clamping: readyTimeout.milliseconds) * 1_000_000)
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
        readyTimeout?.cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .settings(.settings(let settings)):
            let limit = settings.last(where: { $0.parameter == .maxConcurrentStreams })?.value
            if let limit { shared.maxConcurrentStreams.store(limit, ordering: .relaxed) }
            perform(machine.settingsReceived(maxConcurrentStreams: limit))
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
            perform(machine.goAwayReceived(lastStreamID: last, errorCode: UInt32(errorCode.networkCode), debugData: debugData))
        default:
            break
        }
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
        // A stream opened after GOAWAY surfaces as a connection error; the request that raced
        // the GOAWAY is retried elsewhere, and the streams still open must finish here.
        if error is NIOHTTP2Errors.CreatedStreamAfterGoaway { return }
        if error is NIOHTTP2Errors.StreamClosed || error is NIOHTTP2Errors.NoSuchStream { return }
        lastError = "\(error)"
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        readyTimeout?.cancel()
        perform(machine.channelClosed(error: lastError))
        context.fireChannelInactive()
    }

    // MARK: - Calls from the stream delegate and the owner, on the event loop

    func streamCreated() {
        machine.streamOpened()
    }

    func streamClosed() {
        perform(machine.streamClosed())
    }

    func drain(_ reason: ConnectionCloseReason) {
        perform(machine.drainRequested(reason))
    }

    private func readyTimedOut() {
        guard machine.state == .connecting else { return }
        lastError = "no HTTP/2 SETTINGS from the server within the connect timeout"
        context?.close(promise: nil)
    }

    private func perform(_ actions: SubconnectionStateMachine.Actions) {
        if actions.notifyReady {
            readyTimeout?.cancel()
            wasReady = true
            shared.isAvailable.store(true, ordering: .releasing)
            delegate.subconnection(id, address: address, didReport: .ready)
        }
        if let reason = actions.notifyDraining {
            shared.isAvailable.store(false, ordering: .releasing)
            shared.closeReason.withLock { $0 = $0 ?? reason }
            delegate.subconnection(id, address: address, didReport: .draining(reason))
        }
        if actions.closeChannel {
            context?.close(promise: nil)
        }
        if let reason = actions.notifyClosed {
            shared.isAvailable.store(false, ordering: .releasing)
            delegate.subconnection(id, address: address, didReport: .closed(reason, wasReady: wasReady))
        }
    }
}

/// Counts the connection's streams for its ``ConnectionHandler``; NIOHTTP2's inline multiplexer
/// reports stream creation and closure only through this delegate.
struct StreamCounter: NIOHTTP2StreamDelegate {
    let handler: NIOLoopBound<ConnectionHandler>

    func streamCreated(_ id: HTTP2StreamID, channel: any Channel) {
        handler.value.streamCreated()
    }

    func streamClosed(_ id: HTTP2StreamID, channel: any Channel) {
        handler.value.streamClosed()
    }
}
