/// How one attempt of a request ended, as the retry rules see it.
enum AttemptOutcome: Equatable {
    /// The server did not process it: refused (REFUSED_STREAM), above a GOAWAY's
    /// last-stream-id, or lost before anything reached the wire.
    case unprocessed
    /// A response head arrived whose status the retry policy retries; `retryAfter` is its
    /// `Retry-After` field, if any. Nothing of it was handed to the caller yet.
    case retryableStatus(retryAfter: String?)
    /// It failed after the request may have reached the server: the connection was lost or the
    /// stream reset under it, or the body of a response the pool collects broke off.
    case failedAfterSending
}

/// What to do after an attempt: the retry-safety rules in one place.
///
/// | outcome | decision |
/// |---|---|
/// | unprocessed | send again at once on another connection, without the budget, while the body can be sent again and the per-request bound allows (rule 1, 2) |
/// | retryable status | retry if the body can be sent again and ``RetryState`` agrees: idempotent, attempts, deadline, budget (rule 3) |
/// | failed after sending | the same, and only if the policy retries transport failures (rule 3) |
///
/// A response handed to the caller is never decided on (rule 4): the attempt loop returns it.
enum RetryDecision: Equatable {
    /// Send the same request again on another connection now (the server did not process it).
    case sendAgain
    /// Try again after this delay (an attempt that may have reached a server).
    case retry(after: Duration)
    /// No further attempt, and why.
    case stop(RetryStop)

    /// Decides after an attempt ended with `outcome`.
    /// - Parameters:
    ///   - bodyReplayable: Whether the request body (if any) could be sent again.
    ///   - transparentRetries: Transparent re-sends so far; `maxTransparentRetries` bounds them.
    ///   - retries: The request's attempts, policy, budget and deadline; draws on the budget only
    ///     for a ``retry(after:)``.
    static func after(
        _ outcome: AttemptOutcome,
        bodyReplayable: Bool,
        transparentRetries: Int,
        maxTransparentRetries: Int,
        retries: inout RetryState,
        shuttingDown: Bool,
        now: ContinuousClock.Instant = .now,
        random: Double = .random(in: 0...1)
    ) -> RetryDecision {
        switch outcome {
        case .unprocessed:
            guard bodyReplayable else { return .stop(.notRetryable(Self.bodyRead)) }
            guard transparentRetries < maxTransparentRetries else {
                return .stop(.notRetryable("not processed after \(transparentRetries + 1) attempts"))
            }
            return .sendAgain
        case .retryableStatus(let retryAfter):
            guard bodyReplayable else { return .stop(.notRetryable(Self.bodyRead)) }
            return RetryDecision(retries.decide(retryAfter: retryAfter, shuttingDown: shuttingDown, now: now, random: random))
        case .failedAfterSending:
            guard bodyReplayable else { return .stop(.notRetryable(Self.bodyRead)) }
            guard retries.policy.retriesTransportFailures else {
                return .stop(.notRetryable("the retry policy does not retry transport failures"))
            }
            return RetryDecision(retries.decide(retryAfter: nil, shuttingDown: shuttingDown, now: now, random: random))
        }
    }

    static let bodyRead = "the streamed request body was already read"

    private init(_ decision: RetryState.Decision) {
        switch decision {
        case .retry(let delay): self = .retry(after: delay)
        case .stop(let stop): self = .stop(stop)
        }
    }
}
