import HTTPTypes
import NIOCore

extension LBPool {
    /// Opens a full-duplex stream for `request` and hands it to `exchange` at once, before any
    /// response: the closure writes the request body (``DuplexStream/write(_:)``, then
    /// ``DuplexStream/finish(trailers:)``) while it reads the response
    /// (``DuplexStream/response()``). The stream is reset if the closure returns before both
    /// sides ended.
    ///
    /// The deadline covers the wait for a ready connection and for the response head. Retries:
    /// only a stream the server did not process, while none of its body was written, is opened
    /// again (up to ``Configuration/maxTransparentRetries`` times); the retry policy does not
    /// apply, since the exchange cannot be replayed.
    ///
    /// - Parameters:
    ///   - request: The request head.
    ///   - timeout: Deadline until the response head arrives. Default:
    ///     ``Configuration/requestTimeout``.
    ///   - options: Per-request settings; only ``RequestOptions`` fields that do not concern
    ///     retries apply.
    ///   - exchange: Writes the body and reads the response; what it returns, `execute` returns.
    /// - Throws: ``LBPoolError``, or what `exchange` throws.
    public func execute<Result>(
        _ request: HTTPRequest,
        timeout: Duration? = nil,
        options: RequestOptions = .init(),
        duplex exchange: (DuplexStream) async throws -> Result
    ) async throws -> Result {
        let timeout = timeout ?? configuration.requestTimeout
        try validate(request, timeout: timeout)
        let start = ContinuousClock.now
        let deadline = start + timeout
        let nioDeadline = NIODeadline.now() + TimeAmount(timeout)
        let head = RequestHead(request, scheme: defaultScheme, authority: defaultAuthority, bodyLength: nil)
        let metrics = balancer.metrics
        let trace = tracer.map { RequestTrace(tracer: $0, request: request, target: target) }
        let first: DuplexStream.Attempt
        do {
            first = try await openDuplexAttempt(head: head, deadline: deadline, nioDeadline: nioDeadline, avoiding: nil, trace: trace)
        } catch {
            metrics.requestFailed(error)
            trace?.failed(error)
            metrics.requestDuration(
                .now - start, method: head.method, status: nil, errorType: (error as? LBPoolError)?.code.description ?? "\(type(of: error))",
                peer: (error as? LBPoolError)?.address)
            throw error
        }
        let stream = DuplexStream(first: first, deadline: nioDeadline, maxReopens: configuration.maxTransparentRetries) { failed in
            self.release(failed.subconnection)
            metrics.transparentRetries.increment()
            let unprocessed = LBPoolError(.connectionFailed, "request not processed", address: failed.subconnection.address)
            trace?.attemptEnded(unprocessed, goAway: failed.subconnection.shared.closing.reason)
            trace?.resending(after: unprocessed)
            return try await self.openDuplexAttempt(
                head: head, deadline: deadline, nioDeadline: nioDeadline, avoiding: failed.subconnection.address, trace: trace)
        }
        defer {
            let last = stream.attempt
            last.response.closeIfOpen()
            release(last.subconnection)
        }
        do {
            let result = try await exchange(stream)
            metrics.succeeded.increment()
            let failedStatus = stream.status.map { configuration.outlierDetection?.failureStatuses.contains($0) ?? false } ?? false
            recordOutcome(stream.attempt.subconnection, success: !failedStatus)
            if let status = stream.status { trace?.attemptAnswered(status: status) }
            trace?.finished()
            metrics.requestDuration(
                .now - start, method: head.method, status: stream.status, errorType: stream.status.flatMap { $0 >= 400 ? "\($0)" : nil },
                peer: stream.attempt.subconnection.address)
            return result
        } catch {
            metrics.requestFailed(error, lastAttempt: stream.attempt.subconnection.address)
            recordOutcome(stream.attempt.subconnection, success: false)
            if let status = stream.status { trace?.attemptAnswered(status: status) }
            trace?.failed(error)
            metrics.requestDuration(
                .now - start, method: head.method, status: stream.status,
                errorType: (error as? LBPoolError)?.code.description ?? "\(type(of: error))", peer: stream.attempt.subconnection.address)
            throw error
        }
    }

    /// Picks a connection and opens a stream on it; a stream that could not open is tried on
    /// another connection within the deadline.
    private func openDuplexAttempt(
        head: RequestHead, deadline: ContinuousClock.Instant, nioDeadline: NIODeadline, avoiding: ResolvedAddress?,
        trace: RequestTrace?
    ) async throws -> DuplexStream.Attempt {
        var avoid = avoiding
        var tries = 0
        while true {
            let subconnection = try await pickSubconnection(until: deadline, avoiding: avoid)
            let attemptHead =
                trace?.attemptStarted(on: subconnection.address, scheme: defaultScheme, authority: defaultAuthority, bodyLength: nil) ?? head
            do {
                let (response, control) = try await subconnection.openDuplex(head: attemptHead, deadline: nioDeadline)
                return DuplexStream.Attempt(subconnection: subconnection, response: response, control: control)
            } catch let failure as AttemptFailure {
                release(subconnection)
                tries += 1
                let error = failure.poolError(reopened: tries - 1)
                trace?.attemptEnded(error, goAway: failure.closeReason)
                guard failure.kind != .notSendable, tries <= configuration.maxTransparentRetries else { throw error }
                trace?.resending(after: error)
                avoid = subconnection.address
            }
        }
    }

    /// Gives back the stream slot a pick reserved.
    func release(_ subconnection: Subconnection) {
        balancer.release(subconnection)
    }
}
