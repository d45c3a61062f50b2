import HTTPTypes
import NIOCore

/// Request streams, carried by the connection handler itself: a request is an entry in
/// ``ConnectionHandler/streams`` (its ``HTTP2StreamStateMachine`` and its ``ResponseStream``),
/// and a few frames in the connection's output buffer. The state machine judges each frame of
/// the stream; this file does what its outcomes say.
///
/// ```
///  openStream ──HEADERS (+DATA) written──▶ open ──response HEADERS──▶ head delivered ──END_STREAM both ways──▶ closed
///      │                                    │                          │
///      └──connection not ready: fails       └──deadline / reset / RST / GOAWAY / connection closed──▶ closed
/// ```
extension ConnectionHandler {
    /// Opens a stream and queues the request head, and `body` if given, for this tick's write;
    /// with `endStream` the request ends there, otherwise the caller sends the rest with
    /// ``sendBody(_:end:on:promise:)`` and ``sendTrailers(_:on:promise:)``. The outcome reaches
    /// `response`; returns the stream's control, or `nil` if it could not open (then `response`
    /// has failed, with the head not sent).
    func openStream(
        _ response: ResponseStream,
        head: RequestHead,
        body: ByteBuffer?,
        endStream: Bool,
        deadline: NIODeadline
    ) -> StreamControl? {
        guard let context = channelContext, acceptsStreams else {
            response.fail(ConnectionClosedError("the connection is going away"))
            return nil
        }
        // Checked again here, on the loop: the slot was reserved against the limit known then,
        // and a SETTINGS read since may have lowered it (a server that stops takes new streams
        // away with SETTINGS_MAX_CONCURRENT_STREAMS = 0). Not sent, so sent again elsewhere.
        guard openStreamCount < peerMaxConcurrentStreams else {
            response.fail(ConnectionClosedError("the server allows \(peerMaxConcurrentStreams) concurrent streams, and as many are open"))
            return nil
        }
        if let limit = peerMaxHeaderListSize {
            let size = head.headerListSize
            guard size <= limit else {
                response.fail(HTTP2RequestHeadTooLarge(size: size, limit: limit))
                return nil
            }
        }
        let id = nextStreamID
        guard id <= HTTP2StreamNumber(Int32.max) - 2 else {
            // Stream ids exhausted: this connection is done; the balancer replaces it.
            drain(.streamLimitReached(Int(id) / 2))
            response.fail(ConnectionClosedError("the connection has used every stream id"))
            return nil
        }
        let headersEnd = endStream && body == nil
        output.writeHTTP2Headers(stream: id, endStream: headersEnd, maxFrameSize: peerMaxFrameSize) { buffer in
            encoder.encode(head, into: &buffer)
        }
        nextStreamID = id + 2
        let control = StreamControl(streamID: id, handler: .http2(NIOLoopBound(self, eventLoop: context.eventLoop)))
        if response.attach(control) {
            // Cancelled meanwhile: the stream was opened on the wire, so it is reset at once.
            output.writeHTTP2RstStream(stream: id, code: .cancel)
            rememberReset(id)
            scheduleFlush()
            response.fail(CancellationError())
            return nil
        }
        streamOpened()
        streams[id] = OpenStream(
            response: response, deadline: deadline,
            machine: HTTP2StreamStateMachine(endStreamSent: headersEnd, isHeadRequest: head.isHead, receiveWindow: streamWindow))
        headsInOutput.append(id)
        armDeadlineTimer(for: deadline)
        if !headersEnd {
            sendWindows.open(id)
            if let body {
                _ = sendWindows.enqueue(.init(data: body, endStream: endStream, promise: nil), on: id)
                sendPendingData()
            }
        }
        scheduleFlush()
        return control
    }

    /// The collected output was written (or failed): heads in it count as sent, body promises
    /// complete.
    func outputWritten(heads: [HTTP2StreamNumber], promises: [EventLoopPromise<Void>], _ result: Result<Void, any Error>) {
        switch result {
        case .success:
            for id in heads { streams[id]?.response.markHeadSent() }
            for promise in promises { promise.succeed() }
        case .failure(let error):
            // Never reached the wire: the connection is failing.
            for id in heads { closeStream(id, error: error) }
            for promise in promises { promise.fail(error) }
        }
    }

    /// Queues a chunk of a streamed request body; `promise` completes once it is written.
    func sendBody(_ chunk: ByteBuffer, end: Bool, on id: HTTP2StreamNumber, promise: EventLoopPromise<Void>) {
        queueBody(.init(data: chunk, endStream: end, promise: promise), on: id)
    }

    /// Queues request trailers after the body sent so far; they end the request.
    func sendTrailers(_ trailers: HTTPFields, on id: HTTP2StreamNumber, promise: EventLoopPromise<Void>) {
        queueBody(.init(data: ByteBuffer(), endStream: true, promise: promise, trailers: trailers), on: id)
    }

    private func queueBody(_ pending: HTTP2SendWindows.Pending, on id: HTTP2StreamNumber) {
        guard let stream = streams[id], stream.machine.localOpen, sendWindows.enqueue(pending, on: id) else {
            let reason = streams[id] == nil ? recentlyClosed.last(where: { $0.stream == id })?.reason : nil
            pending.promise?.fail(RequestBodyNotSent(reason: reason ?? "the stream is closed"))
            return
        }
        sendPendingData()
        scheduleFlush()
    }

    /// Writes the DATA frames (and request trailers) the flow-control windows allow.
    func sendPendingData() {
        // Streams whose last body byte went out; closed after `take`, which must not be
        // re-entered (closing a stream touches the windows).
        var ended: [HTTP2StreamNumber] = []
        sendWindows.take { frame in
            if let trailers = frame.trailers {
                output.writeHTTP2Headers(stream: frame.stream, endStream: true, maxFrameSize: peerMaxFrameSize) { buffer in
                    encoder.encode(trailers: trailers, into: &buffer)
                }
            } else {
                output.writeHTTP2FrameHeader(
                    length: frame.data.readableBytes, type: HTTP2FrameType.data,
                    flags: frame.endStream ? HTTP2FrameType.endStream : 0, stream: frame.stream)
                output.writeImmutableBuffer(frame.data)
            }
            if let promise = frame.promise { promisesInOutput.append(promise) }
            if frame.endStream { ended.append(frame.stream) }
        }
        for id in ended {
            guard var stream = streams[id] else { continue }
            stream.machine.endSent()
            streams[id] = stream
            if stream.machine.state == .closed { streamComplete(id) }
        }
    }

    /// The reader took `bytes` of the body: lets the server send that much more.
    func bodyConsumed(_ bytes: Int, on id: HTTP2StreamNumber) {
        guard var stream = streams[id], let increment = stream.machine.bodyConsumed(bytes) else { return }
        streams[id] = stream
        output.writeHTTP2WindowUpdate(stream: id, increment: increment)
        scheduleFlush()
    }

    /// The task gave up on the stream (cancelled, or its reader stopped early).
    func resetStream(_ id: HTTP2StreamNumber) {
        resetStream(id, code: .cancel, error: CancellationError())
    }

    /// Sends RST_STREAM with `code` and fails what has not arrived with `error`.
    func resetStream(_ id: HTTP2StreamNumber, code: HTTP2Code, error: any Error) {
        guard streams[id] != nil else { return }
        output.writeHTTP2RstStream(stream: id, code: code)
        owe(1)
        rememberReset(id)
        scheduleFlush()
        closeStream(id, error: error)
    }

    /// Frames the server may still send on a stream the client reset are no fault of its own.
    private func rememberReset(_ id: HTTP2StreamNumber) {
        if recentlyReset.count == Self.recentlyResetCapacity { recentlyReset.removeFirst() }
        recentlyReset.append(id)
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
        var expired: [HTTP2StreamNumber] = []
        for (id, stream) in streams {
            guard let deadline = stream.deadline else { continue }
            if deadline <= now {
                expired.append(id)
            } else {
                next = min(next ?? deadline, deadline)
            }
        }
        for id in expired {
            resetStream(id, code: .cancel, error: StreamDeadlineExceeded())
        }
        if let next { armDeadlineTimer(for: next) }
    }

    // MARK: - Inbound

    /// A frame for a stream not in ``streams``: a connection error for a stream never opened
    /// (RFC 9113 §5.1: idle, or an even id, which only a server opens and this client forbids);
    /// on a closed stream, DATA and HEADERS get RST_STREAM(STREAM_CLOSED) unless the client reset
    /// the stream itself lately (frames the server sent before it saw the reset), and other
    /// frames are ignored.
    func frameOnStreamNotOpen(_ id: HTTP2StreamNumber, _ type: String, answer: Bool) throws(HTTP2ConnectionError) {
        guard id % 2 == 1, id < nextStreamID else {
            throw HTTP2ConnectionError(code: .protocolError, message: "\(type) on stream \(id), which the client did not open")
        }
        guard answer, !recentlyReset.contains(id) else { return }
        try spendGlitch()
        output.writeHTTP2RstStream(stream: id, code: .streamClosed)
        owe(1)
    }

    func headersRead(_ fields: ResponseHead, on id: HTTP2StreamNumber, endStream: Bool) throws(HTTP2ConnectionError) {
        guard var stream = streams[id] else {
            try frameOnStreamNotOpen(id, "HEADERS", answer: true)
            return
        }
        let outcome: HTTP2StreamStateMachine.HeadersOutcome
        do {
            outcome = try stream.machine.headersReceived(fields, endStream: endStream)
        } catch {
            streams[id] = stream
            streamError(error, on: id)
            return
        }
        switch outcome {
        case .informational:
            streams[id] = stream
        case .head(let head, let ended):
            stream.deadline = nil
            if limits.responseBodyIdleTimeout != nil { stream.lastActivity = channelContext?.eventLoop.now }
            streams[id] = stream
            // Handed over with the body that follows in the same read, if any (see
            // `deliverPendingHeads`): the task then wakes once, with both.
            pendingHeads.append((id, head, stream.machine.expectedLength))
            if ended { remoteEnded(id, lastChunk: nil) }
        case .trailers(let trailers):
            streams[id] = stream
            stream.response.setTrailers(trailers)
            remoteEnded(id, lastChunk: nil)
        }
    }

    /// The read is over: heads no body followed in it go to their tasks now.
    func deliverPendingHeads() {
        guard !pendingHeads.isEmpty else { return }
        for (id, head, length) in pendingHeads {
            streams[id]?.response.deliverHead(head, expectedLength: length)
        }
        pendingHeads.removeAll(keepingCapacity: true)
    }

    /// Takes the head of `id` that was read but not handed over yet, with its body's length.
    private func takePendingHead(_ id: HTTP2StreamNumber) -> (head: HTTPResponse, length: Int?)? {
        guard let index = pendingHeads.firstIndex(where: { $0.stream == id }) else { return nil }
        let pending = pendingHeads.remove(at: index)
        return (pending.head, pending.length)
    }

    func dataRead(_ data: ByteBuffer, on id: HTTP2StreamNumber, endStream: Bool, flowControlledLength: Int) throws(HTTP2ConnectionError) {
        guard connectionWindowUsed(flowControlledLength, bodyBytes: data.readableBytes, on: id) else {
            throw HTTP2ConnectionError(code: .flowControlError, message: "DATA beyond the connection window")
        }
        guard var stream = streams[id] else {
            try frameOnStreamNotOpen(id, "DATA", answer: true)
            return
        }
        if flowControlledLength == 0, !endStream { try spendGlitch() }
        let ended: Bool
        do {
            ended = try stream.machine.dataReceived(length: data.readableBytes, flowControlledLength: flowControlledLength, endStream: endStream)
        } catch {
            streams[id] = stream
            streamError(error, on: id)
            return
        }
        let chunk = data.readableBytes > 0 ? data : nil
        if limits.responseBodyIdleTimeout != nil { stream.lastActivity = channelContext?.eventLoop.now }
        if ended {
            streams[id] = stream
            remoteEnded(id, lastChunk: chunk)
            return
        }
        let padding = flowControlledLength - data.readableBytes
        if padding > 0, let increment = stream.machine.paddingDiscarded(padding) {
            output.writeHTTP2WindowUpdate(stream: id, increment: increment)
        }
        streams[id] = stream
        if let (head, length) = takePendingHead(id) {
            stream.response.deliver(head, expectedLength: length, chunk: chunk, end: false)
            return
        }
        if let chunk { stream.response.append(chunk, end: false) }
    }

    func resetRead(_ code: HTTP2Code, on id: HTTP2StreamNumber) throws(HTTP2ConnectionError) {
        guard var stream = streams[id] else {
            try frameOnStreamNotOpen(id, "RST_STREAM", answer: false)
            return
        }
        let complete = stream.machine.resetReceived(code)
        streams[id] = stream
        guard complete else {
            closeStream(id, error: HTTP2StreamReset(stream: id, code: code, byServer: true))
            return
        }
        // The response is whole; what the reset stops is the rest of the request body.
        let reason = "the server stopped the request body with RST_STREAM(NO_ERROR) after its complete response"
        closedReasons[id] = reason
        deliverEnd(id, stream, lastChunk: nil)
        closeStream(id, error: RequestBodyNotSent(reason: reason))
    }

    func windowUpdateRead(_ increment: UInt32, on id: HTTP2StreamNumber) throws(HTTP2ConnectionError) {
        guard streams[id] != nil else {
            // A WINDOW_UPDATE may follow END_STREAM (RFC 9113 §6.9).
            try frameOnStreamNotOpen(id, "WINDOW_UPDATE", answer: false)
            return
        }
        guard increment > 0 else {
            resetStream(
                id, code: .protocolError, error: HTTP2StreamStateMachine.StreamError(code: .protocolError, message: "WINDOW_UPDATE of 0 on stream \(id)"))
            return
        }
        if let code = sendWindows.streamWindowUpdate(Int(increment), on: id) {
            resetStream(id, code: code, error: HTTP2StreamReset(stream: id, code: code, byServer: false))
        }
        sendPendingData()
    }

    /// The server ended its side of the stream: the response is handed over whole. With the
    /// client's side ended too, the stream closes; otherwise the rest of the request body can
    /// change nothing (RFC 9113 §8.1), so it is not sent, and the stream does not wait for a
    /// window the server may never open.
    private func remoteEnded(_ id: HTTP2StreamNumber, lastChunk: ByteBuffer?) {
        guard let stream = streams[id] else { return }
        deliverEnd(id, stream, lastChunk: lastChunk)
        if stream.machine.state == .closed {
            streamComplete(id)
        } else {
            let reason = "the response ended before the request body was sent"
            closedReasons[id] = reason
            resetStream(id, code: .cancel, error: RequestBodyNotSent(reason: reason))
        }
    }

    private func deliverEnd(_ id: HTTP2StreamNumber, _ stream: OpenStream, lastChunk: ByteBuffer?) {
        if let (head, length) = takePendingHead(id) {
            stream.response.deliver(head, expectedLength: length, chunk: lastChunk, end: true)
        } else {
            stream.response.append(lastChunk, end: true)
        }
    }

    /// Both sides ended the stream: the response is whole and every body byte was sent, so
    /// nothing is left to fail.
    private func streamComplete(_ id: HTTP2StreamNumber) {
        guard streams.removeValue(forKey: id) != nil else { return }
        _ = sendWindows.close(id)
        streamEnded()
    }

    private func streamError(_ error: HTTP2StreamStateMachine.StreamError, on id: HTTP2StreamNumber) {
        let failure: any Error = error.code == .protocolError ? HTTP2MalformedMessage("stream \(id): \(error.message)") : error
        resetStream(id, code: error.code, error: failure)
    }

    /// Removes the stream; whatever of its response has not arrived fails with `error`, and
    /// body bytes not yet sent fail their writers.
    func closeStream(_ id: HTTP2StreamNumber, error: any Error) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        let reason = closedReasons.removeValue(forKey: id) ?? "the stream closed: \(error)"
        // Kept a while for writers that come after the close.
        if recentlyClosed.count == Self.recentlyResetCapacity { recentlyClosed.removeFirst() }
        recentlyClosed.append((id, reason))
        let writerError = RequestBodyNotSent(reason: reason)
        for promise in sendWindows.close(id) { promise.fail(writerError) }
        // A head that arrived counts as arrived: what failed is the body.
        if let (head, length) = takePendingHead(id) { stream.response.deliverHead(head, expectedLength: length) }
        stream.response.fail(error)
        streamEnded()
    }

    /// The connection closed: every stream fails.
    func failAllStreams(_ error: any Error) {
        let open = streams
        streams.removeAll()
        for (id, stream) in open {
            for promise in sendWindows.close(id) { promise.fail(error) }
            if let (head, length) = takePendingHead(id) { stream.response.deliverHead(head, expectedLength: length) }
            stream.response.fail(error)
        }
    }
}

/// The connection could not carry the stream (closed, going away, out of stream ids). The
/// request never reached the server.
struct ConnectionClosedError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// No response head arrived before the request's deadline; the stream was reset.
struct StreamDeadlineExceeded: Error, CustomStringConvertible {
    var description: String { "no response head before the deadline" }
}

/// A request body chunk or trailers that were not sent, and why (the stream closed, or the
/// server ended or stopped it).
struct RequestBodyNotSent: Error, CustomStringConvertible {
    var reason: String

    var description: String { "request body not sent: \(reason)" }
}

/// No DATA of a response body arrived for ``timeout``: the stream was reset.
struct ResponseBodyIdle: Error, CustomStringConvertible {
    var timeout: Duration

    var description: String { "no response body bytes for \(timeout) (responseBodyIdleTimeout)" }
}

/// The request's header list is larger than the server's SETTINGS_MAX_HEADER_LIST_SIZE: it was
/// not sent.
struct HTTP2RequestHeadTooLarge: Error, CustomStringConvertible {
    var size: Int
    var limit: Int

    var description: String {
        "request header list of \(size) bytes is larger than the server's SETTINGS_MAX_HEADER_LIST_SIZE of \(limit)"
    }
}
