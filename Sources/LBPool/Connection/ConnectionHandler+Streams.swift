import HTTPTypes
import NIOCore
import NIOHPACK
import NIOHTTP2

/// Request streams, carried by the connection handler itself.
///
/// `NIOHTTP2Handler` runs without a stream multiplexer, so every frame reaches
/// ``ConnectionHandler`` with its stream id; a request is an entry in ``ConnectionHandler/streams``
/// and its ``ResponseStream``. `NIOHTTP2Handler` still keeps the HTTP/2 state machine, HPACK and
/// outbound flow control; what a stream channel would add (inbound flow control, timeouts,
/// resets) is here.
///
/// ```
///  openStream ──HEADERS (+DATA) written──▶ open ──response HEADERS──▶ head delivered ──END_STREAM──▶ closed
///      │                                    │                          │
///      └──connection not ready: fails       └──deadline / reset / RST / GOAWAY / connection closed──▶ closed
/// ```
extension ConnectionHandler {
    /// Opens a stream and writes the request head (and an in-memory body) in one flush. The
    /// outcome reaches `response`; returns the stream's control, or `nil` if it could not open
    /// (then `response` has failed, with the head not sent).
    func openStream(
        _ response: ResponseStream,
        head: HPACKHeaders,
        body: RequestBody.Storage?,
        deadline: NIODeadline
    ) -> StreamControl? {
        guard let context = channelContext, acceptsStreams else {
            response.fail(LBPoolError(.connectionFailed, "the connection is going away"))
            return nil
        }
        let id = nextStreamID
        guard Int(id) <= Int(Int32.max) - 2 else {
            // Stream ids exhausted: this connection is done; the balancer replaces it.
            drain(.streamLimitReached(Int(id) / 2))
            response.fail(LBPoolError(.connectionFailed, "the connection has used every stream id"))
            return nil
        }
        nextStreamID = HTTP2StreamID(Int32(id) + 2)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let control = StreamControl(streamID: id, handler: loopBound)
        if response.attach(control) {
            response.fail(CancellationError())
            return nil
        }
        streamOpened()
        streams[id] = OpenStream(response: response, deadline: deadline)
        armDeadlineTimer(for: deadline)

        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { result in
            loopBound.value.requestHeadWritten(id, result)
        }
        let endStream: Bool
        switch body {
        case nil: endStream = true
        case .bytes, .stream: endStream = false
        }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: head, endStream: endStream)))), promise: written)
        if case .bytes(let buffer) = body {
            // A server may answer before reading the body and reset the stream (nginx does):
            // a failed body write matters only if no response follows.
            context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(buffer), endStream: true)))), promise: nil)
        }
        context.flush()
        return control
    }

    private func requestHeadWritten(_ id: HTTP2StreamID, _ result: Result<Void, any Error>) {
        guard let stream = streams[id] else { return }
        switch result {
        case .success:
            stream.response.markHeadSent()
        case .failure(let error):
            // Refused before it reached the wire (after GOAWAY, invalid, connection closing).
            closeStream(id, error: error)
        }
    }

    func sendBody(_ chunk: ByteBuffer, end: Bool, on id: HTTP2StreamID, promise: EventLoopPromise<Void>) {
        guard let context = channelContext, streams[id] != nil else {
            promise.fail(LBPoolError(.connectionFailed, "stream closed before the request body was sent"))
            return
        }
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(chunk), endStream: end)))), promise: promise)
    }

    /// The reader took `bytes` of the body: lets the server send that much more.
    func bodyConsumed(_ bytes: Int, on id: HTTP2StreamID) {
        guard let context = channelContext, streams[id] != nil, bytes > 0 else { return }
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: bytes))), promise: nil)
    }

    /// The task gave up on the stream (cancelled, or its reader stopped early).
    func resetStream(_ id: HTTP2StreamID) {
        guard streams[id] != nil else { return }
        channelContext?.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.cancel))), promise: nil)
        closeStream(id, error: CancellationError())
    }

    private func armDeadlineTimer(for deadline: NIODeadline) {
        guard let context = channelContext else { return }
        if let armed = streamDeadlineTimer, armed.at <= deadline { return }
        streamDeadlineTimer?.task.cancel()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: deadline) {
            loopBound.value.deadlinesPassed()
        }
        streamDeadlineTimer = (deadline, task)
    }

    /// Resets every stream whose deadline passed without a response head; re-arms for the next.
    private func deadlinesPassed() {
        streamDeadlineTimer = nil
        let now = NIODeadline.now()
        var next: NIODeadline?
        var expired: [HTTP2StreamID] = []
        for (id, stream) in streams {
            guard let deadline = stream.deadline else { continue }
            if deadline <= now {
                expired.append(id)
            } else {
                next = min(next ?? deadline, deadline)
            }
        }
        for id in expired {
            channelContext?.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.cancel))), promise: nil)
            closeStream(id, error: LBPoolError(.deadlineExceeded, "no response head before the deadline"))
        }
        if let next { armDeadlineTimer(for: next) }
    }

    // MARK: - Inbound

    func streamFrameRead(_ frame: HTTP2Frame) {
        let id = frame.streamID
        guard var stream = streams[id] else { return }
        switch frame.payload {
        case .headers(let headers):
            if stream.headReceived {
                // Trailers end the body; their content is not exposed.
                stream.response.append(nil, end: headers.endStream)
                return
            }
            let head: HTTPResponse
            do {
                head = try ResponseHead.parse(headers.headers)
            } catch {
                protocolViolation(on: id, error)
                return
            }
            // 1xx responses are informational; the final one follows.
            if head.status.kind == .informational { return }
            stream.headReceived = true
            stream.deadline = nil
            streams[id] = stream
            stream.response.deliverHead(head)
            if headers.endStream { stream.response.append(nil, end: true) }
        case .data(let data):
            guard stream.headReceived else {
                protocolViolation(on: id, LBPoolError(.invalidResponse, "DATA before the response HEADERS"))
                return
            }
            if case .byteBuffer(let buffer) = data.data {
                stream.response.append(buffer, end: data.endStream)
            } else {
                stream.response.append(nil, end: data.endStream)
            }
        default:
            // RST_STREAM arrives as a StreamClosedEvent with its code; WINDOW_UPDATE and
            // PRIORITY need nothing from us.
            break
        }
    }

    private func protocolViolation(on id: HTTP2StreamID, _ error: any Error) {
        channelContext?.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.protocolError))), promise: nil)
        closeStream(id, error: error)
    }

    /// `NIOHTTP2Handler` closed the stream: both sides ended it, the server reset it, or a
    /// GOAWAY dropped it.
    func streamClosedByConnection(_ event: StreamClosedEvent) {
        let error: any Error = event.reason.map { NIOHTTP2Errors.streamClosed(streamID: event.streamID, errorCode: $0) }
            ?? LBPoolError(.connectionFailed, "stream closed before response headers")
        closeStream(event.streamID, error: error)
    }

    /// `NIOHTTP2Handler` refused a frame of the stream (it never reached the wire).
    func streamFailed(_ id: HTTP2StreamID, error: any Error) {
        closeStream(id, error: error)
    }

    /// Removes the stream; whatever of its response has not arrived fails with `error`.
    private func closeStream(_ id: HTTP2StreamID, error: any Error) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        stream.response.fail(error)
        streamEnded()
    }

    /// The connection closed: every stream fails.
    func failAllStreams(_ error: any Error) {
        let open = streams
        streams.removeAll()
        for (_, stream) in open {
            stream.response.fail(error)
        }
    }

    /// The connection's inbound window changed: opens it again once half of it is used.
    func connectionWindowChanged(_ size: Int) {
        guard size < connectionWindowTarget / 2, let context = channelContext else { return }
        let frame = HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: connectionWindowTarget - size))
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }
}
