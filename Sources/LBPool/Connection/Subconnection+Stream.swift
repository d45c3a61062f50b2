import HTTPTypes
import NIOCore

/// One attempt on one subconnection failed before response headers arrived. `kind` says what
/// the server may have done with it, which is what retry decisions need.
struct AttemptFailure: Error {
    enum Kind: Equatable {
        /// The request never reached the server's processing (stream not created, above a
        /// GOAWAY's last-stream-id, or refused): safe to send again anywhere.
        case unprocessed
        /// The server may have processed it.
        case mayHaveBeenProcessed
        /// The request's deadline passed.
        case deadlineExceeded
        /// The request cannot be sent as it is (its head is larger than the server accepts):
        /// nothing went out, and another attempt would fail alike.
        case notSendable
    }

    var kind: Kind
    var underlying: any Error
    var address: ResolvedAddress
    /// Why the connection was going away, if it was.
    var closeReason: ConnectionCloseReason?
    /// The connection was closed at its drain deadline with this request open.
    var closedAtDrainDeadline = false
}

extension Subconnection {
    /// Sends `head` and `body` on a new stream and hands the response head and the stream its
    /// body arrives on to `handle`. Failures before the response head throw
    /// ``AttemptFailure``; anything later (including what `handle` throws) is rethrown as it is.
    func execute<Result>(
        head: RequestHead,
        body: OutboundBody?,
        deadline: NIODeadline,
        _ handle: (HTTPResponse, ResponseStream) async throws -> Result
    ) async throws -> Result {
        // Picked just before it started draining: a new stream would only prolong the drain.
        guard shared.isAvailable.load(ordering: .acquiring), let handler = connected?.handler else {
            if shared.streamStarted() { drain(.streamLimitReached(shared.streamCap)) }
            throw AttemptFailure(kind: .unprocessed, underlying: ConnectionClosedError("not connected"), address: address)
        }
        let response = ResponseStream()
        let storage = body
        var control: StreamControl?
        if case .stream = storage {
            // A streamed body is written by this task once the stream is open.
            control = try? await handler.eventLoop.submit {
                handler.openStream(response, head: head, body: nil, endStream: false, deadline: deadline)
            }.get()
        } else {
            let bytes: ByteBuffer? = if case .bytes(let buffer) = storage { buffer } else { nil }
            if handler.eventLoop.inEventLoop {
                // A task on the connection's own loop (see PoolTaskExecutor): no hop needed.
                _ = handler.openStream(response, head: head, body: bytes, endStream: true, deadline: deadline)
            } else {
                shared.handoffs.wrappingAdd(1, ordering: .relaxed)
                handler.eventLoop.execute {
                    _ = handler.openStream(response, head: head, body: bytes, endStream: true, deadline: deadline)
                }
            }
        }
        if shared.streamStarted() {
            // Queued on the event loop after every stream of the cap: the drain counts them open.
            drain(.streamLimitReached(shared.streamCap))
        }

        var bodyWriteError: (any Error)?
        if case .stream(let stream) = storage, let control {
            do {
                try await stream.send { chunk in try await control.send(chunk, end: false) }
                try await control.send(ByteBuffer(), end: true)
            } catch {
                // A server may answer before it has read the body, then reset the stream
                // (nginx does): a failed body write is only an error if no response follows.
                bodyWriteError = error
                response.closeIfOpen()
            }
        }

        let responseHead = try await self.head(of: response, deadline: deadline, bodyWriteError: bodyWriteError)
        defer { response.closeIfOpen() }
        return try await handle(responseHead, response)
    }

    /// Opens a stream whose request body and trailers the caller writes through the returned
    /// control, while it reads the response. Throws ``AttemptFailure`` (unprocessed) if the
    /// stream could not open.
    func openDuplex(head: RequestHead, deadline: NIODeadline) async throws -> (ResponseStream, StreamControl) {
        guard shared.isAvailable.load(ordering: .acquiring), let handler = connected?.handler else {
            if shared.streamStarted() { drain(.streamLimitReached(shared.streamCap)) }
            throw AttemptFailure(kind: .unprocessed, underlying: ConnectionClosedError("not connected"), address: address)
        }
        let response = ResponseStream()
        let control = try? await handler.eventLoop.submit {
            handler.openStream(response, head: head, body: nil, endStream: false, deadline: deadline)
        }.get()
        if shared.streamStarted() { drain(.streamLimitReached(shared.streamCap)) }
        guard let control else {
            let underlying = response.headFailure?.underlying ?? ConnectionClosedError("the stream did not open")
            throw AttemptFailure(kind: underlying is HTTP2RequestHeadTooLarge ? .notSendable : .unprocessed, underlying: underlying, address: address)
        }
        return (response, control)
    }

    /// Waits for the response head of `response`; a failure before it throws
    /// ``AttemptFailure`` saying whether the server may have processed the request.
    func head(of response: ResponseStream, deadline: NIODeadline, bodyWriteError: (any Error)? = nil) async throws -> HTTPResponse {
        do {
            return try await response.head()
        } catch let failure as ResponseStream.HeadFailure {
            if failure.underlying is CancellationError { throw CancellationError() }
            if failure.underlying is HTTP2RequestHeadTooLarge {
                throw AttemptFailure(kind: .notSendable, underlying: failure.underlying, address: address)
            }
            let error = bodyWriteError ?? failure.underlying
            if !failure.headSent, NIODeadline.now() < deadline {
                // The head never went out: the server cannot have seen the request.
                throw AttemptFailure(kind: .unprocessed, underlying: error, address: address, closeReason: shared.closing.reason)
            }
            throw classify(error, streamID: failure.streamID, deadline: deadline)
        }
    }

    private func classify(_ error: any Error, streamID: HTTP2StreamNumber?, deadline: NIODeadline) -> AttemptFailure {
        if NIODeadline.now() >= deadline {
            return AttemptFailure(kind: .deadlineExceeded, underlying: error, address: address)
        }
        if let closed = error as? HTTP1ClosedBeforeResponse, closed.reusedConnection {
            // The keep-alive race: the server closed the idle connection as the request went
            // out, and no byte of a response came back.
            return AttemptFailure(kind: .unprocessed, underlying: error, address: address, closeReason: shared.closing.reason)
        }
        if let reset = error as? HTTP2StreamReset, reset.byServer, reset.code == HTTP2Code.refusedStream {
            // REFUSED_STREAM: the server did no processing (RFC 9113 §8.7).
            return AttemptFailure(kind: .unprocessed, underlying: error, address: address, closeReason: shared.closing.reason)
        }
        guard let streamID else {
            // No stream id: nothing was written.
            return AttemptFailure(kind: .unprocessed, underlying: error, address: address, closeReason: shared.closing.reason)
        }
        if Int(streamID) > shared.goAwayLastStreamID.load(ordering: .relaxed) {
            return AttemptFailure(kind: .unprocessed, underlying: error, address: address, closeReason: shared.closing.reason)
        }
        return AttemptFailure(
            kind: .mayHaveBeenProcessed, underlying: error, address: address, closeReason: shared.closing.reason,
            closedAtDrainDeadline: shared.closedAtDrainDeadline.load(ordering: .relaxed))
    }
}
