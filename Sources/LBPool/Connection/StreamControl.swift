import HTTPTypes
import NIOCore

/// The handler that speaks a connection's protocol, on its event loop: the HTTP/2 one of this
/// library or the HTTP/1.1 one on `NIOHTTP1`. Both carry requests the same way.
enum WireHandler: Sendable {
    case http2(NIOLoopBound<ConnectionHandler>)
    case http1(NIOLoopBound<HTTP1ConnectionHandler>)

    var eventLoop: any EventLoop {
        switch self {
        case .http2(let handler): return handler.eventLoop
        case .http1(let handler): return handler.eventLoop
        }
    }

    /// Sends a request on a new stream (HTTP/2) or on the idle connection (HTTP/1.1); see
    /// ``ConnectionHandler/openStream(_:head:body:endStream:deadline:)``. On the event loop.
    func openStream(
        _ response: ResponseStream, head: RequestHead, body: ByteBuffer?, endStream: Bool, deadline: NIODeadline
    ) -> StreamControl? {
        switch self {
        case .http2(let handler):
            return handler.value.openStream(response, head: head, body: body, endStream: endStream, deadline: deadline)
        case .http1(let handler):
            return handler.value.openStream(response, head: head, body: body, endStream: endStream, deadline: deadline)
        }
    }

    /// Stops new requests; the connection closes when the open ones end. On the event loop.
    func drain(_ reason: ConnectionCloseReason) {
        switch self {
        case .http2(let handler): handler.value.drain(reason)
        case .http1(let handler): handler.value.drain(reason)
        }
    }
}

/// What the task executing a request may ask of its stream, which lives on the connection's
/// event loop: each call hops there, unless the task already runs on it.
struct StreamControl: Sendable {
    /// The HTTP/2 stream id, or the number of the request on an HTTP/1.1 connection.
    let streamID: HTTP2StreamNumber
    let handler: WireHandler

    /// Ends the stream with RST_STREAM(CANCEL) if it is still open (over HTTP/1.1: closes the
    /// connection if the response has not ended). Always queued, never run in place: a
    /// cancellation handler may call this from any code on the loop.
    func reset() {
        let streamID = streamID
        switch handler {
        case .http2(let handler): handler.eventLoop.execute { handler.value.resetStream(streamID) }
        case .http1(let handler): handler.eventLoop.execute { handler.value.resetStream(streamID) }
        }
    }

    /// The reader consumed `bytes` of the body: the server may send that much more.
    func consumed(_ bytes: Int) {
        let streamID = streamID
        switch handler {
        case .http2(let handler): onLoop { handler.value.bodyConsumed(bytes, on: streamID) }
        case .http1(let handler): onLoop { handler.value.bodyConsumed(bytes, on: streamID) }
        }
    }

    /// Sends a chunk of a streamed request body; returns once it was written.
    func send(_ chunk: ByteBuffer, end: Bool) async throws {
        let streamID = streamID
        let promise = handler.eventLoop.makePromise(of: Void.self)
        switch handler {
        case .http2(let handler): onLoop { handler.value.sendBody(chunk, end: end, on: streamID, promise: promise) }
        case .http1(let handler): onLoop { handler.value.sendBody(chunk, end: end, on: streamID, promise: promise) }
        }
        try await promise.futureResult.get()
    }

    /// Sends request trailers after the body; they end the request. Returns once written.
    func sendTrailers(_ trailers: HTTPFields) async throws {
        let streamID = streamID
        let promise = handler.eventLoop.makePromise(of: Void.self)
        switch handler {
        case .http2(let handler): onLoop { handler.value.sendTrailers(trailers, on: streamID, promise: promise) }
        case .http1(let handler): onLoop { handler.value.sendTrailers(trailers, on: streamID, promise: promise) }
        }
        try await promise.futureResult.get()
    }

    /// Runs `work` now when on the connection's event loop, otherwise queues it there.
    private func onLoop(_ work: @escaping @Sendable () -> Void) {
        let eventLoop = handler.eventLoop
        if eventLoop.inEventLoop {
            work()
        } else {
            eventLoop.execute(work)
        }
    }
}
