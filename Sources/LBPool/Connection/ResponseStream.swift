import HTTPTypes
import NIOCore
import Synchronization

/// The meeting point of one request stream on the connection's event loop (in
/// ``ConnectionHandler``) and the task that executes the request: the connection delivers the
/// response head, body chunks and the end; the task waits for them. Everything is under one
/// short lock, and continuations are resumed outside it.
///
/// The continuations are unsafe ones (no allocation, no check): each is stored in the state
/// under the lock and taken out of it, under the lock, by the one call that resumes it, so none
/// is resumed twice or dropped.
///
/// Back-pressure is HTTP/2 flow control: the server may send a stream's window ahead of the
/// reader, and the window is opened again only as the reader consumes the body (in steps of
/// ``windowUpdateStep`` bytes), so at most one window per stream is ever buffered.
final class ResponseStream: Sendable {
    static let windowUpdateStep = 512 * 1024

    /// How an attempt failed before its response head arrived.
    struct HeadFailure: Error {
        var underlying: any Error
        /// Whether the request head was written to the connection: if not, the server cannot
        /// have seen the request.
        var headSent: Bool
        /// The stream's id, once it had one.
        var streamID: HTTP2StreamNumber?
    }

    fileprivate enum Head {
        /// Not arrived; the task may be waiting for it.
        case waiting(UnsafeContinuation<HTTPResponse, any Error>?)
        /// Arrived before the task asked for it.
        case arrived(HTTPResponse)
        case taken
        case failed(HeadFailure)
    }

    fileprivate struct State {
        var head = Head.waiting(nil)
        var headSent = false
        var chunks = ChunkQueue()
        /// `nil` while the body may still grow; then success or the error that ended it.
        var end: Result<Void, any Error>?
        var bodyWaiter: UnsafeContinuation<ByteBuffer?, any Error>?
        /// Body bytes the reader took since the stream's window was last opened again.
        var consumedSinceUpdate = 0
        var control: StreamControl?
        var cancelled = false
        /// The response's trailers, set before the end of the body.
        var trailers: HTTPFields?
        /// The body's content-length, once the head declared one.
        var expectedLength: Int?
    }

    private let state = Mutex(State())

    // MARK: - Event-loop side (ConnectionHandler)

    /// The stream has an id; returns whether the task was cancelled already.
    func attach(_ control: StreamControl) -> Bool {
        state.withLock { state in
            state.control = control
            return state.cancelled
        }
    }

    func markHeadSent() {
        state.withLock { $0.headSent = true }
    }

    /// The response's trailers arrived; the end of the body follows.
    func setTrailers(_ trailers: HTTPFields) {
        state.withLock { $0.trailers = trailers }
    }

    func deliverHead(_ response: HTTPResponse, expectedLength: Int?) {
        deliver(response, expectedLength: expectedLength, chunk: nil, end: false)
    }

    /// The response head together with the body that came with it (possibly all of it), and
    /// the body's declared length (``ResponseBody/collect(upTo:)`` reserves room for it): one
    /// lock, and the task wakes once.
    func deliver(_ response: HTTPResponse, expectedLength: Int?, chunk: ByteBuffer?, end: Bool) {
        let waiter = state.withLock { state -> UnsafeContinuation<HTTPResponse, any Error>? in
            guard case .waiting(let waiter) = state.head else { return nil }
            state.expectedLength = expectedLength
            if let chunk, chunk.readableBytes > 0 { state.chunks.append(chunk) }
            if end, state.end == nil { state.end = .success(()) }
            if let waiter {
                state.head = .taken
                return waiter
            }
            // Nobody waits yet: kept for ``head()``.
            state.head = .arrived(response)
            return nil
        }
        waiter?.resume(returning: response)
    }

    /// Adds a body chunk (possibly empty) and, with `end`, ends the body.
    func append(_ chunk: ByteBuffer?, end: Bool) {
        let (waiter, value) = state.withLock { state -> (UnsafeContinuation<ByteBuffer?, any Error>?, ByteBuffer?) in
            if end, state.end == nil { state.end = .success(()) }
            if let chunk, chunk.readableBytes > 0 {
                if let waiter = state.bodyWaiter {
                    state.bodyWaiter = nil
                    return (waiter, chunk)
                }
                state.chunks.append(chunk)
                return (nil, nil)
            }
            if state.end != nil, let waiter = state.bodyWaiter {
                state.bodyWaiter = nil
                return (waiter, nil)
            }
            return (nil, nil)
        }
        waiter?.resume(returning: value)
    }

    /// The stream closed or failed: whatever has not arrived yet never will.
    func fail(_ error: any Error) {
        let (headWaiter, bodyWaiter, failure) = state.withLock { state in
            var headWaiter: UnsafeContinuation<HTTPResponse, any Error>?
            var failure: HeadFailure?
            if case .waiting(let waiter) = state.head {
                let headFailure = HeadFailure(underlying: error, headSent: state.headSent, streamID: state.control?.streamID)
                state.head = .failed(headFailure)
                headWaiter = waiter
                failure = headFailure
            }
            var bodyWaiter: UnsafeContinuation<ByteBuffer?, any Error>?
            if state.end == nil {
                state.end = .failure(ResponseBodyCutOff(underlying: error))
                bodyWaiter = state.bodyWaiter
                state.bodyWaiter = nil
            }
            return (headWaiter, bodyWaiter, failure)
        }
        if let headWaiter, let failure { headWaiter.resume(throwing: failure) }
        if let bodyWaiter {
            bodyWaiter.resume(throwing: ResponseBodyCutOff(underlying: error))
        }
    }

    // MARK: - Task side

    /// The trailers, once the body ended with them.
    var trailers: HTTPFields? {
        state.withLock { state in
            guard case .success = state.end else { return nil }
            return state.trailers
        }
    }

    /// The declared length of the body, if any.
    var expectedLength: Int? {
        state.withLock { $0.expectedLength }
    }

    /// Whether the attempt failed before its head arrived, and how; `nil` while it has not.
    var headFailure: HeadFailure? {
        state.withLock { state in
            if case .failed(let failure) = state.head { return failure }
            return nil
        }
    }

    /// Waits for the response head; throws ``HeadFailure``.
    func head() async throws -> HTTPResponse {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<HTTPResponse, any Error>) in
                let ready = state.withLock { state -> Result<HTTPResponse, any Error>? in
                    switch state.head {
                    case .waiting:
                        state.head = .waiting(continuation)
                        return nil
                    case .arrived(let head):
                        state.head = .taken
                        return .success(head)
                    case .taken:
                        return .failure(ResponseHeadTaken())
                    case .failed(let failure):
                        return .failure(failure)
                    }
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            cancel()
        }
    }

    /// The next body chunk, or `nil` at the end of the body.
    func next() async throws -> ByteBuffer? {
        enum Outcome {
            case chunk(ByteBuffer, openWindow: (StreamControl, Int)?)
            case end(Result<Void, any Error>)
            case wait
        }
        let outcome = state.withLock { state -> Outcome in
            if let chunk = state.chunks.popFirst() {
                return .chunk(chunk, openWindow: state.consumed(chunk.readableBytes))
            }
            if let end = state.end { return .end(end) }
            return .wait
        }
        switch outcome {
        case .chunk(let chunk, let openWindow):
            if let (control, bytes) = openWindow { control.consumed(bytes) }
            return chunk
        case .end(let result):
            try result.get()
            return nil
        case .wait:
            break
        }
        let chunk = try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<ByteBuffer?, any Error>) in
                let ready = state.withLock { state -> Result<ByteBuffer?, any Error>? in
                    if let chunk = state.chunks.popFirst() {
                        return .success(chunk)
                    }
                    if let end = state.end { return end.map { nil } }
                    state.bodyWaiter = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            cancel()
        }
        if let chunk, let (control, bytes) = state.withLock({ $0.consumed(chunk.readableBytes) }) {
            control.consumed(bytes)
        }
        return chunk
    }

    /// Resets the stream (if it is still open) and fails whoever waits.
    func cancel() {
        let control = state.withLock { state in
            state.cancelled = true
            return state.control
        }
        control?.reset()
        fail(CancellationError())
    }

    /// Resets the stream if the body did not end: the server learns with RST_STREAM(CANCEL).
    func closeIfOpen() {
        let control = state.withLock { state in state.end == nil ? state.control : nil }
        control?.reset()
    }
}

extension ResponseStream.State {
    /// Counts consumed body bytes; returns the window to open again once a step is reached
    /// (and the body may still grow).
    fileprivate mutating func consumed(_ bytes: Int) -> (StreamControl, Int)? {
        consumedSinceUpdate += bytes
        guard consumedSinceUpdate >= ResponseStream.windowUpdateStep, end == nil, let control else { return nil }
        defer { consumedSinceUpdate = 0 }
        return (control, consumedSinceUpdate)
    }
}

/// Body chunks waiting for the reader. Most bodies arrive in one chunk, which needs no storage
/// of its own; more go to a buffer made on first use.
struct ChunkQueue {
    private var first: ByteBuffer?
    private var rest: CircularBuffer<ByteBuffer>?

    mutating func append(_ chunk: ByteBuffer) {
        if first == nil {
            first = chunk
        } else if rest == nil {
            rest = CircularBuffer(initialCapacity: 4)
            rest?.append(chunk)
        } else {
            rest?.append(chunk)
        }
    }

    mutating func popFirst() -> ByteBuffer? {
        guard let chunk = first else { return nil }
        first = rest?.popFirst()
        return chunk
    }
}

/// The stream closed before the response body ended; `underlying` says why.
struct ResponseBodyCutOff: Error, CustomStringConvertible {
    var underlying: any Error
    var description: String { "stream closed before the response body ended (\(underlying))" }
}

/// ``ResponseStream/head()`` was called again after the head was handed over.
struct ResponseHeadTaken: Error, CustomStringConvertible {
    var description: String { "the response head was already taken" }
}
