import HTTPTypes
import NIOCore

/// What the task executing a request may ask of its stream, which lives on the connection's
/// event loop: each call hops there, unless the task already runs on it.
struct StreamControl: Sendable {
    let streamID: HTTP2StreamNumber
    let handler: NIOLoopBound<ConnectionHandler>

    /// Ends the stream with RST_STREAM(CANCEL) if it is still open. Always queued, never run in
    /// place: a cancellation handler may call this from any code on the loop.
    func reset() {
        let handler = handler, streamID = streamID
        handler.eventLoop.execute { handler.value.resetStream(streamID) }
    }

    /// The reader consumed `bytes` of the body: the server may send that much more.
    func consumed(_ bytes: Int) {
        let handler = handler, streamID = streamID
        onLoop { handler.value.bodyConsumed(bytes, on: streamID) }
    }

    /// Sends a chunk of a streamed request body; returns once it was written.
    func send(_ chunk: ByteBuffer, end: Bool) async throws {
        let handler = handler, streamID = streamID
        let promise = handler.eventLoop.makePromise(of: Void.self)
        onLoop { handler.value.sendBody(chunk, end: end, on: streamID, promise: promise) }
        try await promise.futureResult.get()
    }

    /// Sends request trailers after the body; they end the request. Returns once written.
    func sendTrailers(_ trailers: HTTPFields) async throws {
        let handler = handler, streamID = streamID
        let promise = handler.eventLoop.makePromise(of: Void.self)
        onLoop { handler.value.sendTrailers(trailers, on: streamID, promise: promise) }
        try await promise.futureResult.get()
    }

    /// Runs `work` now when on the connection's event loop, otherwise queues it there.
    private func onLoop(_ work: @escaping @Sendable () -> Void) {
        if handler.eventLoop.inEventLoop {
            work()
        } else {
            handler.eventLoop.execute(work)
        }
    }
}
