import HTTPTypes
import NIOCore
import Synchronization

/// One full-duplex exchange on the pool: the request body is written while the response is
/// read, in any order the caller likes (gRPC bidirectional calls, uploads whose server reports
/// progress, long polls that post acknowledgements). Given to the closure of
/// ``LBPool/execute(_:timeout:options:duplex:)``, and valid only inside it.
///
/// ```swift
/// try await pool.execute(request, duplex: { stream in
///     try await stream.write(ByteBuffer(string: "ping 1\n"))
///     let response = try await stream.response()
///     var body = response.body.makeAsyncIterator()
///     let answer = try await body.next()            // the server's answer to "ping 1"
///     try await stream.write(ByteBuffer(string: "ping 2\n"))
///     try await stream.finish()                    // half-close: END_STREAM
///     while let more = try await body.next() { print(more) }
///     return response.body.trailers               // the server's trailers, if any
/// })
/// ```
///
/// Back-pressure: ``write(_:)`` returns once the chunk was written to the connection, which the
/// server's HTTP/2 flow-control window paces. When the server ends or resets the stream,
/// writing throws an ``LBPoolError`` that says so.
///
/// Retries: a stream the server did not process (refused, or above a GOAWAY's last-stream-id)
/// is opened again on another connection, transparently, only while nothing of its body was
/// written; after that, or once the response head was handed over, nothing is sent again.
public final class DuplexStream: Sendable {
    struct Attempt: Sendable {
        var subconnection: Subconnection
        var response: ResponseStream
        var control: StreamControl
    }

    private struct State {
        var attempt: Attempt
        /// Body bytes or the end of the request went out: the exchange cannot be sent again.
        var bodyStarted = false
        var reopened = 0
        /// The response status, once its head was handed over.
        var status: Int?
    }

    private let state: Mutex<State>
    private let deadline: NIODeadline
    private let maxReopens: Int
    /// Opens the stream again on another connection (avoiding the address given); releases
    /// the slot of the attempt it replaces.
    private let reopen: @Sendable (_ failed: Attempt) async throws -> Attempt

    init(first: Attempt, deadline: NIODeadline, maxReopens: Int, reopen: @escaping @Sendable (Attempt) async throws -> Attempt) {
        self.state = Mutex(State(attempt: first))
        self.deadline = deadline
        self.maxReopens = maxReopens
        self.reopen = reopen
    }

    var attempt: Attempt { state.withLock { $0.attempt } }

    /// The response status, once ``response()`` returned the head.
    var status: Int? { state.withLock { $0.status } }

    /// The address serving the stream.
    public var servedBy: ResolvedAddress { attempt.subconnection.address }

    /// Fires when the connection carrying this stream starts to go away.
    public var connectionClosing: ConnectionClosingSignal { attempt.subconnection.shared.closing }

    /// Writes a chunk of the request body; returns once it is on the connection.
    public func write(_ chunk: ByteBuffer) async throws {
        let attempt = try await attemptForWriting()
        do {
            try await attempt.control.send(chunk, end: false)
        } catch {
            throw writeFailure(error, attempt)
        }
    }

    /// Ends the request body, with `trailers` if not empty (HEADERS with END_STREAM); the
    /// response goes on.
    public func finish(trailers: HTTPFields = [:]) async throws {
        let attempt = try await attemptForWriting()
        do {
            if trailers.isEmpty {
                try await attempt.control.send(ByteBuffer(), end: true)
            } else {
                try await attempt.control.sendTrailers(trailers)
            }
        } catch {
            throw writeFailure(error, attempt)
        }
    }

    /// Waits for the response head; the body and then the trailers follow on
    /// ``LBPool/StreamingResponse/body``. Call it once.
    public func response() async throws -> LBPool.StreamingResponse {
        while true {
            let attempt = self.attempt
            do {
                let head = try await attempt.subconnection.head(of: attempt.response, deadline: deadline)
                state.withLock { $0.status = head.status.code }
                return LBPool.StreamingResponse(
                    head: head, body: ResponseBody(attempt.response), servedBy: attempt.subconnection.address,
                    connectionClosing: attempt.subconnection.shared.closing, attempts: 1, retryStop: nil)
            } catch let failure as AttemptFailure {
                if failure.kind == .unprocessed, try await reopenIfUnwritten(attempt) { continue }
                throw failure.poolError(reopened: state.withLock { $0.reopened })
            } catch is ResponseHeadTaken {
                throw LBPoolError(
                    .invalidRequest, "the response head was already taken: call response() once",
                    address: attempt.subconnection.address)
            }
        }
    }

    /// Marks the body as started; first opens the stream again if the current one was not
    /// processed and nothing was written yet.
    private func attemptForWriting() async throws -> Attempt {
        let (attempt, started) = state.withLock { ($0.attempt, $0.bodyStarted) }
        if !started, attempt.response.headFailure != nil {
            // The stream failed before anything was written: if the server did not process it,
            // it opens again elsewhere.
            do {
                _ = try await attempt.subconnection.head(of: attempt.response, deadline: deadline)
            } catch let failure as AttemptFailure where failure.kind == .unprocessed {
                if try await reopenIfUnwritten(attempt) { return try await attemptForWriting() }
            } catch {
                // Reported by the write that follows, which fails on the closed stream.
            }
        }
        return state.withLock { state in
            state.bodyStarted = true
            return state.attempt
        }
    }

    /// Opens the stream again on another connection, if nothing of the body was written and
    /// reopens are left. Returns whether it did.
    private func reopenIfUnwritten(_ failed: Attempt) async throws -> Bool {
        let allowed = state.withLock { !$0.bodyStarted && $0.reopened < maxReopens && $0.attempt.response === failed.response }
        guard allowed else { return false }
        let next = try await reopen(failed)
        state.withLock { state in
            state.attempt = next
            state.reopened += 1
        }
        return true
    }

    private func writeFailure(_ error: any Error, _ attempt: Attempt) -> LBPoolError {
        if error is CancellationError { return LBPoolError(.connectionFailed, "the stream was cancelled", address: attempt.subconnection.address) }
        return LBPoolError(.connectionFailed, "\(error)", address: attempt.subconnection.address, underlying: error)
    }
}

extension AttemptFailure {
    /// The error a caller sees for an attempt that failed before its response head.
    func poolError(reopened: Int) -> LBPoolError {
        switch kind {
        case .unprocessed:
            return LBPoolError(.connectionFailed, "request not processed after \(reopened + 1) attempts", address: address, underlying: underlying)
        case .deadlineExceeded:
            return LBPoolError(.deadlineExceeded, "no response head before the deadline", address: address, underlying: underlying)
        case .mayHaveBeenProcessed:
            let reason = closeReason.map { " (connection: \($0))" } ?? ""
            return LBPoolError(.requestFailed, "request failed after it was sent" + reason, address: address, underlying: underlying)
        case .notSendable:
            return LBPoolError(.invalidRequest, "\(underlying)", address: address)
        }
    }
}
