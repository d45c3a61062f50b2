import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import NIOTLS

/// The client end of one HTTP/1.1 connection, after SwiftNIO's `NIOHTTP1` codec (which frames
/// and parses the messages): one request at a time, the connection kept alive between them, no
/// pipelining. It reports to the same ``SubconnectionStateMachine`` as an HTTP/2 connection, so
/// the pool sees one life for both:
///
/// ```
///  connecting ──TCP (and TLS) up──▶ ready ──Connection: close / HTTP/1.0 / drain──▶ draining ──response ends──▶ closed
///                                     │
///                                     └──server closes the idle connection──▶ draining ──▶ closed
/// ```
///
/// A request whose connection closed before any byte of its response, on a connection that had
/// served a response before (the keep-alive race: the server closed it while the request was on
/// its way), fails with ``HTTP1ClosedBeforeResponse`` on a reused connection, which the pool
/// sends again as unprocessed.
///
/// Back-pressure: reads stop while more than ``maxBufferedBody`` bytes of a response body wait
/// for the reader, and resume as it consumes them. Lives on the channel's event loop.
final class HTTP1ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// Body bytes read ahead of the reader before reads stop: what one HTTP/2 stream's window
    /// lets a server send ahead.
    static let maxBufferedBody = 1 << 20

    /// The request on the wire and its response.
    private struct Exchange {
        let id: HTTP2StreamNumber
        let response: ResponseStream
        var requestEnded: Bool
        /// Whether any part of the response arrived.
        var responseStarted = false
        /// Body bytes delivered to the reader and not yet consumed.
        var buffered = 0
        /// No response head by then fails the request; `nil` once the head arrived.
        var deadline: NIODeadline?
    }

    private var machine = SubconnectionStateMachine()
    private var wasReady = false
    private var lastError: String?
    private var context: ChannelHandlerContext?
    private var exchange: Exchange?
    private var nextID: HTTP2StreamNumber = 1
    /// Responses received in full on this connection.
    private var responsesServed = 0
    private var readyTimeout: Scheduled<Void>?
    /// One timer per connection for the requests' deadlines, re-armed only when it fires early
    /// (requests share a timeout, so a later request rarely needs an earlier timer).
    private var deadlineTimer: (at: NIODeadline, task: Scheduled<Void>)?
    private var drainDeadline: Scheduled<Void>?
    private var readHeld = false
    /// Response fields seen lately, converted once (most responses repeat most of theirs).
    private var acceptedFields = ResponseFieldCache()

    let id: SubconnectionID
    let address: ResolvedAddress
    private let shared: SubconnectionShared
    private let reporter: ConnectionReporter
    private let awaitsHandshake: Bool
    private let readyTimeoutAmount: TimeAmount
    private let drainTimeout: TimeAmount
    private let logger: Logger

    init(
        id: SubconnectionID,
        address: ResolvedAddress,
        shared: SubconnectionShared,
        delegate: any SubconnectionDelegate,
        awaitsHandshake: Bool,
        readyTimeout: Duration,
        drainTimeout: Duration,
        logger: Logger
    ) {
        self.id = id
        self.address = address
        self.shared = shared
        self.reporter = ConnectionReporter(id: id, address: address, shared: shared, delegate: delegate)
        self.awaitsHandshake = awaitsHandshake
        self.readyTimeoutAmount = TimeAmount(readyTimeout)
        self.drainTimeout = TimeAmount(drainTimeout)
        self.logger = logger
        // One request at a time.
        shared.maxConcurrentStreams.store(1, ordering: .relaxed)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        readyTimeout = context.eventLoop.scheduleTask(in: readyTimeoutAmount) {
            loopBound.value.readyTimedOut()
        }
        if context.channel.isActive, !awaitsHandshake { becameReady() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if !awaitsHandshake { becameReady() }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if awaitsHandshake, let event = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = event {
            if let negotiated, negotiated != "http/1.1" {
                lastError = "the server negotiated \(negotiated) with ALPN, not http/1.1"
                context.close(promise: nil)
                return
            }
            becameReady()
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func becameReady() {
        perform(machine.settingsReceived(maxConcurrentStreams: 1))
    }

    private func readyTimedOut() {
        guard machine.state == .connecting else { return }
        lastError = "the connection was not up within the connect timeout"
        context?.close(promise: nil)
    }

    private func cancelTimers() {
        readyTimeout?.cancel()
        drainDeadline?.cancel()
        deadlineTimer?.task.cancel()
        deadlineTimer = nil
    }

    // MARK: - Requests, on the event loop

    /// Whether a new request may be sent: ready, not going away, and no request on the wire.
    var acceptsStreams: Bool { machine.state == .ready && exchange == nil }

    /// Writes the request head, and `body` if given; with `endStream` the request ends there,
    /// otherwise the caller sends the rest through the returned control. Returns `nil` if the
    /// request could not be sent (then `response` has failed, with the head not sent).
    func openStream(
        _ response: ResponseStream,
        head: RequestHead,
        body: ByteBuffer?,
        endStream: Bool,
        deadline: NIODeadline
    ) -> StreamControl? {
        guard let context, acceptsStreams else {
            response.fail(ConnectionClosedError(exchange == nil ? "the connection is going away" : "the connection carries another request"))
            return nil
        }
        let id = nextID
        nextID &+= 1
        let control = StreamControl(streamID: id, handler: .http1(NIOLoopBound(self, eventLoop: context.eventLoop)))
        if response.attach(control) {
            // Cancelled before anything was written: the connection stays as it was.
            response.fail(CancellationError())
            return nil
        }
        machine.streamOpened()
        exchange = Exchange(id: id, response: response, requestEnded: endStream, deadline: deadline)
        armDeadlineTimer(for: deadline)
        let nioHead = head.http1Head(streamedBody: !endStream || body != nil)
        let headWritten = context.eventLoop.makePromise(of: Void.self)
        headWritten.futureResult.whenSuccess { response.markHeadSent() }
        context.write(wrapOutboundOut(.head(nioHead)), promise: headWritten)
        if let body, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        if endStream { context.write(wrapOutboundOut(.end(nil)), promise: nil) }
        context.flush()
        return control
    }

    /// Writes a chunk of a streamed request body; `promise` completes once it is written.
    func sendBody(_ chunk: ByteBuffer, end: Bool, on id: HTTP2StreamNumber, promise: EventLoopPromise<Void>) {
        guard let context, var current = exchange, current.id == id, !current.requestEnded else {
            promise.fail(RequestBodyNotSent(reason: "the request is over"))
            return
        }
        if end {
            current.requestEnded = true
            exchange = current
        }
        if chunk.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: end ? nil : promise)
        } else if !end {
            promise.succeed()
        }
        if end { context.write(wrapOutboundOut(.end(nil)), promise: promise) }
        context.flush()
    }

    /// Ends a streamed request body with trailers (chunked encoding); `promise` completes once written.
    func sendTrailers(_ trailers: HTTPFields, on id: HTTP2StreamNumber, promise: EventLoopPromise<Void>) {
        guard let context, var current = exchange, current.id == id, !current.requestEnded else {
            promise.fail(RequestBodyNotSent(reason: "the request is over"))
            return
        }
        current.requestEnded = true
        exchange = current
        context.writeAndFlush(wrapOutboundOut(.end(HTTPHeaders(trailers))), promise: promise)
    }

    /// The reader took `bytes` of the body: reads resume once little enough waits.
    func bodyConsumed(_ bytes: Int, on id: HTTP2StreamNumber) {
        guard var current = exchange, current.id == id else { return }
        current.buffered = max(current.buffered - bytes, 0)
        exchange = current
        if readHeld, current.buffered <= Self.maxBufferedBody, let context {
            readHeld = false
            context.read()
        }
    }

    /// The task gave up on the request before its response ended: HTTP/1.1 has no way to stop
    /// one request but closing its connection.
    func resetStream(_ id: HTTP2StreamNumber) {
        guard let current = exchange, current.id == id else { return }
        abandon(current, error: CancellationError(), reason: "a request was abandoned before its response ended")
    }

    private func armDeadlineTimer(for deadline: NIODeadline) {
        guard let context else { return }
        if let armed = deadlineTimer, armed.at <= deadline { return }
        deadlineTimer?.task.cancel()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: deadline) {
            loopBound.value.deadlineTimerFired()
        }
        deadlineTimer = (deadline, task)
    }

    /// Fails the request whose deadline passed without a response head; re-arms for a later one.
    private func deadlineTimerFired() {
        deadlineTimer = nil
        guard let current = exchange, let deadline = current.deadline else { return }
        guard deadline <= .now() else {
            armDeadlineTimer(for: deadline)
            return
        }
        abandon(current, error: StreamDeadlineExceeded(), reason: "no response head before the request's deadline")
    }

    /// Fails the exchange and closes the connection under it, whose next bytes would be the
    /// rest of this response.
    private func abandon(_ current: Exchange, error: any Error, reason: String) {
        exchange = nil
        current.response.fail(error)
        perform(machine.streamClosed())
        perform(machine.abort(.connectionError(reason)))
    }

    func drain(_ reason: ConnectionCloseReason) {
        perform(machine.drainRequested(reason))
    }

    // MARK: - Back-pressure

    func read(context: ChannelHandlerContext) {
        if let current = exchange, current.buffered > Self.maxBufferedBody {
            readHeld = true
        } else {
            context.read()
        }
    }

    // MARK: - Responses

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard var current = exchange else {
            // Bytes while no request is out: a server that speaks out of turn.
            if case .head(let head) = unwrapInboundIn(data) {
                protocolViolation("a response (\(head.status.code)) while no request was out")
            }
            return
        }
        current.responseStarted = true
        switch unwrapInboundIn(data) {
        case .head(let head):
            let response = HTTPResponse(
                status: .init(code: Int(head.status.code), reasonPhrase: head.status.reasonPhrase), headerFields: fields(of: head.headers))
            current.deadline = nil
            exchange = current
            if !head.isKeepAlive {
                let why = head.version.minor == 0 ? "an HTTP/1.0 response without keep-alive" : "Connection: close"
                perform(machine.drainRequested(.serverClosing(why)))
            }
            let length = head.headers.first(name: "content-length").flatMap { Int($0) }
            current.response.deliverHead(response, expectedLength: length)
        case .body(let chunk):
            current.buffered += chunk.readableBytes
            exchange = current
            current.response.append(chunk, end: false)
        case .end(let trailers):
            exchange = current
            if let trailers, !trailers.isEmpty { current.response.setTrailers(HTTPFields(trailers)) }
            responseEnded()
        }
    }

    /// `headers` as HTTP fields; a name that is no valid field name is left out (NIOHTTP1's
    /// parser admits only tokens, so none is).
    private func fields(of headers: HTTPHeaders) -> HTTPFields {
        var fields = HTTPFields()
        fields.reserveCapacity(headers.count)
        for (name, value) in headers {
            if let field = acceptedFields.field(name: name, value: value) {
                fields.append(field)
            } else if let fieldName = HTTPField.Name(name) {
                let field = HTTPField(name: fieldName, value: value)
                acceptedFields.remember(name: name, value: value, field: field)
                fields.append(field)
            }
        }
        return fields
    }

    /// The response is whole. The exchange ends once the request is written too; a request
    /// body the server did not wait for is not sent, and the connection closes (its next bytes
    /// would be the rest of that body).
    private func responseEnded() {
        guard let current = exchange else { return }
        exchange = nil
        current.response.append(nil, end: true)
        responsesServed += 1
        perform(machine.streamClosed())
        if !current.requestEnded {
            perform(machine.abort(.serverClosing("the response ended before the request body was sent")))
        }
    }

    private func protocolViolation(_ message: String) {
        lastError = message
        logger.warning("HTTP/1.1 response broke the protocol: closing", metadata: ["address": "\(address)", "subconnection": "\(id)", "error": "\(message)"])
        perform(machine.abort(.protocolViolation(.protocolError, message)))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            protocolViolation("the response is not HTTP/1.1: \(error)")
            return
        }
        lastError = "\(error)"
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        if let current = exchange {
            exchange = nil
            let error: any Error =
                current.responseStarted
                ? ConnectionClosedError("connection closed during the response" + (lastError.map { ": \($0)" } ?? ""))
                : HTTP1ClosedBeforeResponse(reusedConnection: responsesServed > 0, detail: lastError)
            current.response.fail(error)
            perform(machine.streamClosed())
        } else if machine.state == .ready {
            // The server closed a connection that carried no request: its idle timeout, or its
            // limit of requests per connection reached. Not an error.
            perform(machine.drainRequested(.serverClosing("the server closed the idle connection")))
        }
        perform(machine.channelClosed(error: lastError))
        context.fireChannelInactive()
    }

    // MARK: - Actions

    private func perform(_ actions: SubconnectionStateMachine.Actions) {
        if actions.notifyReady {
            readyTimeout?.cancel()
            wasReady = true
            reporter.ready()
        }
        if let reason = actions.notifyDraining {
            // Listeners hear it before the request under it is torn down.
            reporter.draining(reason)
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
            reporter.closed(reason, wasReady: wasReady)
        }
    }

    private func drainTimedOut() {
        shared.closedAtDrainDeadline.store(true, ordering: .relaxed)
        perform(machine.abort(.connectionError("drain deadline reached")))
    }
}

/// The connection closed before any byte of the response arrived. On a connection that had
/// served a response before (`reusedConnection`), this is the keep-alive race — the server
/// closed the idle connection as the request went out — and the request was not processed.
struct HTTP1ClosedBeforeResponse: Error, CustomStringConvertible {
    var reusedConnection: Bool
    var detail: String?

    var description: String {
        "the connection closed before any byte of the response"
            + (reusedConnection ? " (a kept-alive connection the server had closed)" : "")
            + (detail.map { ": \($0)" } ?? "")
    }
}
