import HTTPTypes
import NIOCore

/// Request streams, carried by the connection handler itself: a request is an entry in
/// ``ConnectionHandler/streams`` and its ``ResponseStream``, and a few frames in the
/// connection's output buffer.
///
/// ```
///  openStream ──HEADERS (+DATA) written──▶ open ──response HEADERS──▶ head delivered ──END_STREAM both ways──▶ closed
///      │                                    │                          │
///      └──connection not ready: fails       └──deadline / reset / RST / GOAWAY / connection closed──▶ closed
/// ```
extension ConnectionHandler {
    /// Opens a stream and queues the request head (and an in-memory body) for this tick's
    /// write. The outcome reaches `response`; returns the stream's control, or `nil` if it could
    /// not open (then `response` has failed, with the head not sent).
    func openStream(
        _ response: ResponseStream,
        head: RequestHead,
        body: RequestBody.Storage?,
        deadline: NIODeadline
    ) -> StreamControl? {
        guard let context = channelContext, acceptsStreams else {
            response.fail(LBPoolError(.connectionFailed, "the connection is going away"))
            return nil
        }
        let id = nextStreamID
        guard id <= HTTP2StreamNumber(Int32.max) - 2 else {
            // Stream ids exhausted: this connection is done; the balancer replaces it.
            drain(.streamLimitReached(Int(id) / 2))
            response.fail(LBPoolError(.connectionFailed, "the connection has used every stream id"))
            return nil
        }
        let endStream = body == nil
        output.writeHTTP2Headers(stream: id, endStream: endStream, maxFrameSize: peerMaxFrameSize) { buffer in
            encoder.encode(head, into: &buffer)
        }
        nextStreamID = id + 2
        let control = StreamControl(streamID: id, handler: NIOLoopBound(self, eventLoop: context.eventLoop))
        if response.attach(control) {
            // Cancelled meanwhile: the stream was opened on the wire, so it is reset at once.
            output.writeHTTP2RstStream(stream: id, code: HTTP2Code.cancel)
            scheduleFlush()
            response.fail(CancellationError())
            return nil
        }
        streamOpened()
        streams[id] = OpenStream(
            response: response, deadline: deadline, isHeadRequest: head.isHead,
            localEnded: endStream, receiveWindow: streamWindow)
        headsInOutput.append(id)
        armDeadlineTimer(for: deadline)
        if !endStream {
            sendWindows.open(id)
            if case .bytes(let buffer) = body {
                _ = sendWindows.enqueue(.init(data: buffer, endStream: true, promise: nil), on: id)
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
        guard streams[id] != nil, sendWindows.enqueue(.init(data: chunk, endStream: end, promise: promise), on: id) else {
            promise.fail(LBPoolError(.connectionFailed, "stream closed before the request body was sent"))
            return
        }
        sendPendingData()
        scheduleFlush()
    }

    /// Writes the DATA frames the flow-control windows allow.
    func sendPendingData() {
        // Streams whose last body byte went out; closed after `take`, which must not be
        // re-entered (closing a stream touches the windows).
        var ended: [HTTP2StreamNumber] = []
        sendWindows.take { frame in
            output.writeHTTP2FrameHeader(
                length: frame.data.readableBytes, type: HTTP2FrameType.data,
                flags: frame.endStream ? HTTP2FrameType.endStream : 0, stream: frame.stream)
            output.writeImmutableBuffer(frame.data)
            if let promise = frame.promise { promisesInOutput.append(promise) }
            if frame.endStream { ended.append(frame.stream) }
        }
        for id in ended { localEnded(id) }
    }

    private func localEnded(_ id: HTTP2StreamNumber) {
        guard var stream = streams[id] else { return }
        stream.localEnded = true
        streams[id] = stream
        if stream.remoteEnded { streamComplete(id) }
    }

    /// The reader took `bytes` of the body: lets the server send that much more.
    func bodyConsumed(_ bytes: Int, on id: HTTP2StreamNumber) {
        guard var stream = streams[id], bytes > 0, !stream.remoteEnded else { return }
        stream.receiveWindow += bytes
        streams[id] = stream
        output.writeHTTP2WindowUpdate(stream: id, increment: bytes)
        scheduleFlush()
    }

    /// The task gave up on the stream (cancelled, or its reader stopped early).
    func resetStream(_ id: HTTP2StreamNumber) {
        resetStream(id, code: HTTP2Code.cancel, error: CancellationError())
    }

    /// Sends RST_STREAM with `code` and fails what has not arrived with `error`.
    func resetStream(_ id: HTTP2StreamNumber, code: HTTP2Code, error: any Error) {
        guard streams[id] != nil else { return }
        output.writeHTTP2RstStream(stream: id, code: code)
        scheduleFlush()
        closeStream(id, error: error)
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
            resetStream(id, code: HTTP2Code.cancel, error: LBPoolError(.deadlineExceeded, "no response head before the deadline"))
        }
        if let next { armDeadlineTimer(for: next) }
    }

    // MARK: - Inbound

    func headersRead(_ fields: ResponseHead, on id: HTTP2StreamNumber, endStream: Bool) {
        guard var stream = streams[id] else { return }
        guard !stream.remoteEnded else {
            resetStream(id, code: HTTP2Code.streamClosed, error: LBPoolError(.invalidResponse, "HEADERS after the end of stream \(id)"))
            return
        }
        if stream.headReceived {
            // Trailers end the body; their content is not exposed.
            guard endStream, fields.failure == nil else {
                protocolViolation(on: id, LBPoolError(.invalidResponse, "malformed trailers on stream \(id)", underlying: fields.failure))
                return
            }
            remoteEnded(id, stream)
            return
        }
        let head: HTTPResponse
        do {
            head = try fields.response()
        } catch {
            protocolViolation(on: id, error)
            return
        }
        // 1xx responses are informational; the final one follows.
        if head.status.kind == .informational {
            if endStream { protocolViolation(on: id, LBPoolError(.invalidResponse, "stream \(id) ended after a \(head.status.code) response")) }
            return
        }
        stream.headReceived = true
        stream.deadline = nil
        if !stream.isHeadRequest, head.status.code != 204, head.status.code != 304,
           let length = fields.contentLength {
            guard let expected = Int(length), expected >= 0 else {
                protocolViolation(on: id, LBPoolError(.invalidResponse, "malformed content-length '\(length)'"))
                return
            }
            stream.expectedLength = expected
        }
        // Handed over with the body that follows in the same read, if any (see
        // `deliverPendingHeads`): the task then wakes once, with both.
        pendingHeads.append((id, head))
        streams[id] = stream
        if endStream { remoteEnded(id, stream) }
    }

    /// The read is over: heads no body followed in it go to their tasks now.
    func deliverPendingHeads() {
        guard !pendingHeads.isEmpty else { return }
        for (id, head) in pendingHeads {
            streams[id]?.response.deliverHead(head)
        }
        pendingHeads.removeAll(keepingCapacity: true)
    }

    /// Takes the head of `id` that was read but not handed over yet.
    private func takePendingHead(_ id: HTTP2StreamNumber) -> HTTPResponse? {
        guard let index = pendingHeads.firstIndex(where: { $0.stream == id }) else { return nil }
        return pendingHeads.remove(at: index).head
    }

    func dataRead(_ data: ByteBuffer, on id: HTTP2StreamNumber, endStream: Bool, flowControlledLength: Int) throws(HTTP2ConnectionError) {
        guard connectionWindowUsed(flowControlledLength) else {
            throw HTTP2ConnectionError(code: HTTP2Code.flowControlError, message: "DATA beyond the connection window")
        }
        guard var stream = streams[id] else {
            guard id < nextStreamID else {
                throw HTTP2ConnectionError(code: HTTP2Code.protocolError, message: "DATA on idle stream \(id)")
            }
            return
        }
        guard stream.headReceived, !stream.remoteEnded else {
            protocolViolation(on: id, LBPoolError(.invalidResponse, stream.headReceived ? "DATA after the end of stream \(id)" : "DATA before the response HEADERS"))
            return
        }
        stream.receiveWindow -= flowControlledLength
        guard stream.receiveWindow >= 0 else {
            resetStream(id, code: HTTP2Code.flowControlError, error: LBPoolError(.invalidResponse, "server sent beyond the window of stream \(id)"))
            return
        }
        stream.receivedLength += data.readableBytes
        if let expected = stream.expectedLength, stream.receivedLength > expected {
            protocolViolation(on: id, LBPoolError(.invalidResponse, "body of more than \(expected) bytes on stream \(id), its content-length"))
            return
        }
        let chunk = data.readableBytes > 0 ? data : nil
        if endStream {
            remoteEnded(id, stream, lastChunk: chunk)
            return
        }
        let padding = flowControlledLength - data.readableBytes
        if padding > 0 {
            // Padding never reaches the reader: its window is given back at once.
            stream.receiveWindow += padding
            output.writeHTTP2WindowUpdate(stream: id, increment: padding)
        }
        streams[id] = stream
        if let head = takePendingHead(id) {
            stream.response.deliver(head, chunk: chunk, end: false)
            return
        }
        if let chunk { stream.response.append(chunk, end: false) }
    }

    /// The server ended its side of the stream; with the client's side ended too, it closes.
    private func remoteEnded(_ id: HTTP2StreamNumber, _ stream: OpenStream, lastChunk: ByteBuffer? = nil) {
        var stream = stream
        if let expected = stream.expectedLength, stream.receivedLength != expected {
            protocolViolation(on: id, LBPoolError(.invalidResponse, "body of \(stream.receivedLength) bytes on stream \(id), content-length says \(expected)"))
            return
        }
        if let head = takePendingHead(id) {
            stream.response.deliver(head, chunk: lastChunk, end: true)
        } else {
            stream.response.append(lastChunk, end: true)
        }
        stream.remoteEnded = true
        streams[id] = stream
        if stream.localEnded {
            streamComplete(id)
        } else {
            // The response is complete before the request body is (RFC 9113 §8.1): the rest of
            // the body can change nothing, so it is not sent, and the stream does not wait for
            // a window the server may never open.
            resetStream(id, code: HTTP2Code.cancel, error: LBPoolError(.connectionFailed, "the response ended before the request body was sent"))
        }
    }

    /// Both sides ended the stream: the response is whole and every body byte was sent, so
    /// nothing is left to fail.
    private func streamComplete(_ id: HTTP2StreamNumber) {
        guard streams.removeValue(forKey: id) != nil else { return }
        _ = sendWindows.close(id)
        streamEnded()
    }

    private func protocolViolation(on id: HTTP2StreamNumber, _ error: any Error) {
        resetStream(id, code: HTTP2Code.protocolError, error: error)
    }

    /// Removes the stream; whatever of its response has not arrived fails with `error`, and
    /// body bytes not yet sent fail their writers.
    func closeStream(_ id: HTTP2StreamNumber, error: any Error) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        for promise in sendWindows.close(id) { promise.fail(error) }
        // A head that arrived counts as arrived: what failed is the body.
        if let head = takePendingHead(id) { stream.response.deliverHead(head) }
        stream.response.fail(error)
        streamEnded()
    }

    /// The connection closed: every stream fails.
    func failAllStreams(_ error: any Error) {
        let open = streams
        streams.removeAll()
        for (id, stream) in open {
            for promise in sendWindows.close(id) { promise.fail(error) }
            if let head = takePendingHead(id) { stream.response.deliverHead(head) }
            stream.response.fail(error)
        }
    }
}
