import HTTPTypes
import NIOCore
import NIOHPACK
import NIOHTTP2

/// The only handler on a request's HTTP/2 stream channel. On activation it writes the request
/// head (and an in-memory body) in one flush; it hands the response head and body to the
/// ``ResponseStream`` the requesting task waits on, holds reads back while that buffer is full,
/// and closes the stream if no response head arrives by the request's deadline. Lives on the
/// connection's event loop, so a request costs the task one hop there and one back.
final class StreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let response: ResponseStream
    private let requestHead: HPACKHeaders
    /// What follows the head: nothing (the head ends the stream), bytes, or a stream the task
    /// writes itself.
    private let requestBody: RequestBody.Storage?
    private let deadline: NIODeadline
    private var deadlineTimer: Scheduled<Void>?
    private var headReceived = false
    private var firstError: (any Error)?

    init(response: ResponseStream, head: HPACKHeaders, body: RequestBody.Storage?, deadline: NIODeadline) {
        self.response = response
        self.requestHead = head
        self.requestBody = body
        self.deadline = deadline
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if response.attach(context.channel) {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        deadlineTimer = context.eventLoop.scheduleTask(deadline: deadline) {
            channel.close(promise: nil)
        }
        if context.channel.isActive { sendRequest(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendRequest(context: context)
        context.fireChannelActive()
    }

    private var requestSent = false

    private func sendRequest(context: ChannelHandlerContext) {
        guard !requestSent else { return }
        requestSent = true
        switch requestBody {
        case nil:
            context.write(wrapOutboundOut(.headers(.init(headers: requestHead, endStream: true))), promise: nil)
        case .bytes(let buffer):
            context.write(wrapOutboundOut(.headers(.init(headers: requestHead, endStream: false))), promise: nil)
            // A server may answer before reading the body and reset the stream (nginx does): a
            // failed body write matters only if no response follows, which `channelInactive` sees.
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer), endStream: true))), promise: nil)
        case .stream:
            context.write(wrapOutboundOut(.headers(.init(headers: requestHead, endStream: false))), promise: nil)
        }
        context.flush()
        response.markHeadSent()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            if headReceived {
                // Trailers end the body; their content is not exposed.
                response.append(nil, end: headers.endStream)
                return
            }
            let head: HTTPResponse
            do {
                head = try ResponseHead.parse(headers.headers)
            } catch {
                firstError = firstError ?? error
                context.close(promise: nil)
                return
            }
            // 1xx responses are informational; the final one follows.
            if head.status.kind == .informational { return }
            headReceived = true
            deadlineTimer?.cancel()
            deadlineTimer = nil
            response.deliverHead(head)
            if headers.endStream { response.append(nil, end: true) }
        case .data(let data):
            guard headReceived else {
                firstError = firstError ?? LBPoolError(.invalidResponse, "DATA before the response HEADERS")
                context.close(promise: nil)
                return
            }
            if case .byteBuffer(let buffer) = data.data {
                response.append(buffer, end: data.endStream)
            } else {
                response.append(nil, end: data.endStream)
            }
        default:
            break
        }
    }

    func read(context: ChannelHandlerContext) {
        if response.shouldPauseRead() { return }
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The stream channel closes after the error (RST_STREAM, GOAWAY); the first one is why.
        firstError = firstError ?? error
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadlineTimer?.cancel()
        deadlineTimer = nil
        response.fail(firstError ?? LBPoolError(.connectionFailed, "stream closed before response headers"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadlineTimer?.cancel()
        deadlineTimer = nil
        // A stream that never became active (its connection closed first) fails here.
        response.fail(firstError ?? LBPoolError(.connectionFailed, "stream closed before it was opened"))
    }
}
