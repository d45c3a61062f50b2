import NIOCore

/// Sits between `NIOHTTP2Handler` and the socket (or TLS) and turns the flushes of one
/// event-loop tick into one: every request flushes its stream, and without this each would
/// cost a `write` system call. The flush runs as a task on the same event loop, after the
/// tasks and reads already queued in that tick, so nothing waits longer than the tick.
final class FlushCoalescer: ChannelOutboundHandler {
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    private var flushPending = false

    func flush(context: ChannelHandlerContext) {
        guard !flushPending else { return }
        flushPending = true
        context.eventLoop.assumeIsolated().execute {
            self.flushPending = false
            context.flush()
        }
    }
}
