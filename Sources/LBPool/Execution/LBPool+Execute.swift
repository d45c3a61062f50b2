import HTTPTypes
import NIOCore

extension LBPool {
    /// Sends `request` to one of the target's addresses and hands the response to `handle`
    /// as soon as its head arrives. The stream stays open until `handle` returns.
    ///
    /// The request's scheme and authority default to the target's. A request that the server
    /// never processed (stream above a GOAWAY's last-stream-id, REFUSED_STREAM, or lost before
    /// it was sent) is sent again on another connection, up to
    /// ``Configuration/maxTransparentRetries`` times, without spending the retry budget. Other
    /// failures and retryable statuses are retried under the ``RetryPolicy`` and the
    /// ``RetryBudget``; a response is never retried once `handle` has it.
    ///
    /// Header fields are HPACK-indexed by their `indexingStrategy`: mark values that change with
    /// every request (request ids, timestamps) `.avoid` to keep them out of the dynamic table,
    /// and secrets `.disallow` so that they are never indexed, not even by intermediaries.
    ///
    /// - Parameters:
    ///   - request: The request head.
    ///   - body: The request body, or `nil` for none. A streamed body is sent at most once.
    ///   - timeout: Deadline until the response head arrives, including any wait for a ready
    ///     endpoint and every retry. Default: ``Configuration/requestTimeout``.
    ///   - options: Idempotency and retry policy of this request.
    ///   - handle: Reads the response; what it returns, `execute` returns.
    /// - Throws: ``LBPoolError``, or what `handle` throws.
    public func execute<Result>(
        _ request: HTTPRequest,
        body: RequestBody? = nil,
        timeout: Duration? = nil,
        options: RequestOptions = .init(),
        _ handle: (StreamingResponse) async throws -> Result
    ) async throws -> Result {
        let timeout = timeout ?? configuration.requestTimeout
        try validate(request, timeout: timeout)
        let policy = options.retryPolicy ?? configuration.retryPolicy
        if options.retryPolicy != nil {
            do { try policy.validate() } catch { throw LBPoolError(.invalidRequest, "\(error)") }
        }
        let start = ContinuousClock.now
        let deadline = start + timeout
        let nioDeadline = NIODeadline.now() + TimeAmount(timeout)
        let head = RequestHead(
            request,
            scheme: defaultScheme,
            authority: defaultAuthority,
            bodyLength: body?.length
        )
        var retries = RetryState(
            policy: policy,
            budget: retryBudget,
            idempotent: options.idempotent ?? request.method.isIdempotent,
            deadline: deadline
        )
        retryBudget.deposit()
        let metrics = balancer.metrics
        let trace = tracer.map { RequestTrace(tracer: $0, request: request, target: target) }
        var last = LastResponse()
        do {
            let result = try await attempts(
                head: head, body: body, timeout: timeout, deadline: deadline, nioDeadline: nioDeadline,
                policy: policy, retries: &retries, trace: trace, last: &last, handle
            )
            metrics.succeeded.increment()
            trace?.finished()
            metrics.requestDuration(
                .now - start, method: head.method, status: last.status,
                errorType: last.status.flatMap { $0 >= 400 ? "\($0)" : nil }, peer: last.address)
            return result
        } catch {
            metrics.requestFailed(error)
            trace?.failed(error)
            let poolError = error as? LBPoolError
            metrics.requestDuration(
                .now - start, method: head.method, status: last.status,
                errorType: poolError?.code.description ?? "\(type(of: error))", peer: poolError?.address ?? last.address)
            throw error
        }
    }

    /// Refuses what HTTP/2 cannot carry, before anything is sent.
    func validate(_ request: HTTPRequest, timeout: Duration) throws(LBPoolError) {
        guard timeout > .zero else {
            throw LBPoolError(.invalidRequest, "timeout '\(timeout)' must be greater than zero")
        }
        // HTTP/2 needs an origin-form :path (or `*` for OPTIONS); anything else would be refused
        // on the wire, where it looks like a request the server never saw.
        if let path = request.path, !path.hasPrefix("/"), !(path == "*" && request.method == .options) {
            throw LBPoolError(.invalidRequest, "path '\(path)' must start with '/' (or be '*' for OPTIONS)")
        }
        // Pseudo-header values carry no spaces or control characters (RFC 9113 §8.3).
        if let path = request.path, path.utf8.contains(where: Self.isSpaceOrControl) {
            throw LBPoolError(.invalidRequest, "path '\(path)' contains a space or control character")
        }
        if let authority = request.authority, authority.isEmpty || authority.utf8.contains(where: Self.isSpaceOrControl) {
            throw LBPoolError(.invalidRequest, "authority '\(authority)' is empty or contains a space or control character")
        }
    }

    /// The attempts of one request, until one produces a response or no further one is allowed.
    private func attempts<Result>(
        head: RequestHead,
        body: RequestBody?,
        timeout: Duration,
        deadline: ContinuousClock.Instant,
        nioDeadline: NIODeadline,
        policy: RetryPolicy,
        retries: inout RetryState,
        trace: RequestTrace?,
        last: inout LastResponse,
        _ handle: (StreamingResponse) async throws -> Result
    ) async throws -> Result {
        let metrics = balancer.metrics
        var transparentRetries = 0
        var avoid: ResolvedAddress?
        while true {
            // Comes with a stream slot reserved.
            let subconnection: Subconnection
            do {
                subconnection = try await pickSubconnection(until: deadline, avoiding: avoid)
            } catch var error as LBPoolError {
                // A request that ran out of time or options after attempts is the last
                // attempt's address's failure.
                error.address = error.address ?? avoid
                throw error
            }
            // Requests may be waiting for a free stream.
            defer { release(subconnection) }
            // Traced, each attempt carries its own span's context in its fields.
            let attemptHead =
                trace?.attemptStarted(on: subconnection.address, scheme: defaultScheme, authority: defaultAuthority, bodyLength: body?.length)
                ?? head
            let outcome: AttemptOutcome
            var failure: LBPoolError
            var closeReason: ConnectionCloseReason?
            do {
                var statusDecision: RetryDecision?
                let result: Result? = try await subconnection.execute(head: attemptHead, body: body?.storage, deadline: nioDeadline) {
                    response, stream in
                    trace?.attemptAnswered(status: response.status.code)
                    last = LastResponse(status: response.status.code, address: subconnection.address)
                    var stop: RetryStop?
                    let failedStatus = configuration.outlierDetection?.failureStatuses.contains(response.status.code) ?? false
                    recordOutcome(subconnection, success: !failedStatus)
                    if policy.retryableStatuses.contains(response.status.code) {
                        let decision = decide(
                            .retryableStatus(retryAfter: response.headerFields[.retryAfter]), body: body,
                            transparentRetries: transparentRetries, retries: &retries)
                        if case .stop(let reason) = decision {
                            stop = reason
                            if reason == .budgetExhausted { noteBudgetExhausted(subconnection.address) }
                        } else {
                            // Not handed to the caller: the stream closes unread.
                            retryBudget.record(success: false)
                            statusDecision = decision
                            return nil
                        }
                    }
                    retryBudget.record(success: stop == nil)
                    do {
                        return try await handle(
                            StreamingResponse(
                                head: response, body: ResponseBody(stream), servedBy: subconnection.address,
                                connectionClosing: subconnection.shared.closing,
                                attempts: retries.attempts, retryStop: stop))
                    } catch var error as LBPoolError {
                        // The body failed under the handler (or was too large): this address's.
                        error.address = error.address ?? subconnection.address
                        throw error
                    }
                }
                if let result { return result }
                // A retryable status, and the policy and budget allow another attempt.
                trace?.attemptEnded()
                if case .retry(let delay) = statusDecision {
                    metrics.retries.increment()
                    trace?.retrying(after: delay, reason: "retryable status")
                    try await Task.sleep(for: delay)
                }
                avoid = subconnection.address
                continue
            } catch let incomplete as IncompleteResponse {
                outcome = .failedAfterSending
                failure = incomplete.error
                failure.address = failure.address ?? subconnection.address
            } catch let attempt as AttemptFailure {
                closeReason = attempt.closeReason
                switch attempt.kind {
                case .unprocessed:
                    outcome = .unprocessed
                    failure = LBPoolError(.connectionFailed, "request not processed", address: attempt.address, underlying: attempt.underlying)
                case .deadlineExceeded:
                    recordOutcome(subconnection, success: false)
                    throw LBPoolError(
                        .deadlineExceeded, "no response head within \(timeout)",
                        address: attempt.address, underlying: attempt.underlying)
                case .notSendable:
                    throw LBPoolError(.invalidRequest, "\(attempt.underlying)", address: attempt.address)
                case .mayHaveBeenProcessed:
                    outcome = .failedAfterSending
                    var reason = attempt.closeReason.map { " (connection: \($0))" } ?? ""
                    if attempt.closedAtDrainDeadline { reason += "; closed at the drain deadline" }
                    failure = LBPoolError(
                        .requestFailed, "request failed after it was sent" + reason,
                        address: attempt.address, underlying: attempt.underlying)
                }
            }
            if outcome == .failedAfterSending {
                retryBudget.record(success: false)
                recordOutcome(subconnection, success: false)
            }
            trace?.attemptEnded(failure, goAway: closeReason)
            switch decide(outcome, body: body, transparentRetries: transparentRetries, retries: &retries) {
            case .sendAgain:
                transparentRetries += 1
                metrics.transparentRetries.increment()
                trace?.resending(after: failure)
            case .retry(let delay):
                metrics.retries.increment()
                trace?.retrying(after: delay, reason: failure.message)
                try await Task.sleep(for: delay)
            case .stop(let stop):
                if stop == .budgetExhausted { noteBudgetExhausted(subconnection.address) }
                switch outcome {
                case .unprocessed where stop == .notRetryable(RetryDecision.bodyRead):
                    failure.message = "request not processed, and its streamed body was already read, so it cannot be sent again"
                case .unprocessed:
                    failure.message = "request not processed after \(transparentRetries + 1) attempts"
                case .failedAfterSending where failure.code == .requestFailed:
                    failure.message += "; \(stop)"
                default:
                    break
                }
                throw failure
            }
            avoid = subconnection.address
        }
    }

    /// The retry rules (``RetryDecision``) applied to this pool and request.
    private func decide(_ outcome: AttemptOutcome, body: RequestBody?, transparentRetries: Int, retries: inout RetryState) -> RetryDecision {
        RetryDecision.after(
            outcome, bodyReplayable: body?.isReplayable ?? true,
            transparentRetries: transparentRetries, maxTransparentRetries: configuration.maxTransparentRetries,
            retries: &retries, shuttingDown: outcome == .unprocessed ? false : isShuttingDown)
    }

    /// Sends `request` and returns the response with its whole body (at most
    /// ``Configuration/maxCollectedBodyBytes``). See ``execute(_:body:timeout:options:_:)``.
    public func execute(
        _ request: HTTPRequest,
        body: RequestBody? = nil,
        timeout: Duration? = nil,
        options: RequestOptions = .init()
    ) async throws -> Response {
        let limit = configuration.maxCollectedBodyBytes
        return try await execute(request, body: body, timeout: timeout, options: options) { response in
            let collected: ByteBuffer
            do {
                collected = try await response.body.collect(upTo: limit)
            } catch let error as LBPoolError where error.code == .connectionFailed {
                // Nothing of this response reached the caller yet: the attempt failed like a
                // transport failure after sending, and may be retried as one.
                throw IncompleteResponse(error: error)
            }
            return Response(
                head: response.head, body: collected, servedBy: response.servedBy,
                attempts: response.attempts, retryStop: response.retryStop, trailers: response.body.trailers)
        }
    }

    func recordOutcome(_ subconnection: Subconnection, success: Bool) {
        if let counter = subconnection.health {
            balancer.recordOutcome(subconnection.address, counter: counter, success: success)
        }
    }

    func noteBudgetExhausted(_ address: ResolvedAddress) {
        balancer.metrics.budgetExhausted.increment()
        logger.notice("retry budget exhausted: not retrying", metadata: ["target": "\(target)", "address": "\(address)"])
    }

    var isShuttingDown: Bool {
        balancer.pickerState.current().snapshot.isShuttingDown
    }

    /// Picks a ready subconnection with a free stream and reserves that stream, waiting for one
    /// until `deadline` (``Balancer/pick(with:until:avoiding:)``); a failure becomes the
    /// caller's ``LBPoolError``.
    func pickSubconnection(until deadline: ContinuousClock.Instant, avoiding: ResolvedAddress?) async throws -> Subconnection {
        do {
            return try await balancer.pick(with: picker, until: deadline, avoiding: avoiding)
        } catch let failure as PickFailure {
            switch failure {
            case .shuttingDown:
                throw LBPoolError(.shutdown, "the pool for \(target) is shutting down")
            case .noAddresses(let error):
                throw LBPoolError(.noAddresses, "\(error)", underlying: error)
            case .deadline(let allFull, let resolutionError, let resolved, let lastDial):
                var message =
                    allFull
                    ? "every connection to \(target) stayed at the server's stream limit until the deadline"
                    : "no ready connection to \(target) before the deadline"
                if let resolutionError { message += "; \(resolutionError)" } else if !resolved { message += "; the name has not resolved yet" }
                if let lastDial { message += "; last dial: \(lastDial)" }
                throw LBPoolError(.deadlineExceeded, message)
            }
        }
    }
}

/// The latest response head of a request and the address that sent it, for its metrics.
struct LastResponse {
    var status: Int?
    var address: ResolvedAddress?
}

/// The body of a response the pool collects for the caller broke off: nothing of the response
/// was handed over, so the attempt counts as failed after sending (retryable when safe).
struct IncompleteResponse: Error {
    var error: LBPoolError
}

extension LBPool {
    /// A byte that may not appear in a `:path` or `:authority`: space, controls, DEL.
    static func isSpaceOrControl(_ byte: UInt8) -> Bool {
        byte <= 0x20 || byte == 0x7F
    }
}

extension PoolMetrics {
    /// Counts a failed request: for the address its ``LBPoolError`` names (the last attempt's),
    /// or `lastAttempt`; an error the caller's own handler threw counts for no address.
    func requestFailed(_ error: any Error, lastAttempt: ResolvedAddress? = nil) {
        let poolError = error as? LBPoolError
        requestFailed(at: poolError.flatMap { $0.address ?? lastAttempt }, code: poolError?.code.description ?? "")
    }
}
