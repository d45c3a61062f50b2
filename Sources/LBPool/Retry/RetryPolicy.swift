import HTTPTypes

/// When a request that may have reached the server is sent again.
///
/// Requests the server never processed are always re-sent, transparently (see
/// ``LBPool/Configuration/maxTransparentRetries``); this policy governs everything else:
/// - a response whose status is in ``retryableStatuses``, or a transport failure after the
///   request was sent,
/// - only for idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or requests marked
///   idempotent (``LBPool/RequestOptions/idempotent``),
/// - only while the request body can be sent again, never after the response head was handed to
///   the caller,
/// - and only while the pool's ``RetryBudget`` allows.
///
/// Between attempts the pool waits a full-jitter backoff (a random time up to
/// `min(maxBackoff, initialBackoff × 2^(attempt-1))`), or what `Retry-After` asks up to
/// ``maxRetryAfter``, never past the request's deadline. A retry goes to another address when one
/// is ready.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in total, the first included. Default: 3. 1 disables retries.
    public var maxAttempts: Int = 3
    /// Response statuses worth another attempt. Default: 502, 503, 504.
    public var retryableStatuses: Set<Int> = [502, 503, 504]
    /// Whether transport failures after the request was sent (connection reset, stream reset,
    /// connection lost) are retried. Default: `true`.
    public var retriesTransportFailures = true
    /// Upper bound of the first backoff. Default: 25 ms.
    public var initialBackoff: Duration = .milliseconds(25)
    /// Upper bound of any backoff. Default: 1 s.
    public var maxBackoff: Duration = .seconds(1)
    /// Longest `Retry-After` honoured; a longer one ends the retries. Default: 2 s.
    public var maxRetryAfter: Duration = .seconds(2)

    public init() {}

    /// No retries beyond the transparent ones.
    public static var none: RetryPolicy {
        var policy = RetryPolicy()
        policy.maxAttempts = 1
        return policy
    }

    /// The most this policy waits before attempt `attempt + 1`, `attempt` ≥ 1.
    func backoffCeiling(afterAttempt attempt: Int) -> Duration {
        Backoff.capped(initial: initialBackoff, multiplier: 2, maximum: maxBackoff, attempt: attempt)
    }

    /// Full jitter: `random` in `0...1` scales the ceiling.
    func backoff(afterAttempt attempt: Int, random: Double) -> Duration {
        Backoff.fullJitter(backoffCeiling(afterAttempt: attempt), random: random)
    }

    func validate() throws(LBPoolConfigurationError) {
        guard maxAttempts >= 1 else {
            throw .init(setting: "retryPolicy.maxAttempts", value: "\(maxAttempts)", reason: "must be at least 1")
        }
        for status in retryableStatuses where !(100...999).contains(status) {
            throw .init(setting: "retryPolicy.retryableStatuses", value: "\(status)", reason: "not an HTTP status")
        }
        guard initialBackoff >= .zero else {
            throw .init(setting: "retryPolicy.initialBackoff", value: "\(initialBackoff)", reason: "must not be negative")
        }
        guard maxBackoff >= initialBackoff else {
            throw .init(setting: "retryPolicy.maxBackoff", value: "\(maxBackoff)", reason: "must not be below retryPolicy.initialBackoff")
        }
        guard maxRetryAfter >= .zero else {
            throw .init(setting: "retryPolicy.maxRetryAfter", value: "\(maxRetryAfter)", reason: "must not be negative")
        }
    }
}

extension HTTPRequest.Method {
    /// RFC 9110 §9.2.2.
    var isIdempotent: Bool {
        switch self {
        case .get, .head, .options, .trace, .put, .delete: return true
        default: return false
        }
    }
}

/// Why a request was not tried again.
public enum RetryStop: Sendable, Hashable, CustomStringConvertible {
    /// The policy's attempt limit was reached.
    case maxAttempts(Int)
    /// The retry budget had nothing left.
    case budgetExhausted
    /// The request is not idempotent (nor marked so), or its body cannot be sent again.
    case notRetryable(String)
    /// The next attempt would start after the deadline.
    case deadline

    public var description: String {
        switch self {
        case .maxAttempts(let count): return "stopped after \(count) attempts (retry policy maximum)"
        case .budgetExhausted: return "retry budget exhausted"
        case .notRetryable(let why): return "not retried: \(why)"
        case .deadline: return "no time left for another attempt before the deadline"
        }
    }
}
