/// The retry decisions of one request: attempts so far, the policy, the budget, the deadline.
struct RetryState {
    enum Decision: Equatable {
        /// Try again after this delay.
        case retry(after: Duration)
        case stop(RetryStop)
    }

    let policy: RetryPolicy
    let budget: any RetryBudget
    let idempotent: Bool
    let deadline: ContinuousClock.Instant
    /// Attempts that may have reached a server.
    private(set) var attempts = 1

    init(policy: RetryPolicy, budget: any RetryBudget, idempotent: Bool, deadline: ContinuousClock.Instant, attempts: Int = 1) {
        self.policy = policy
        self.budget = budget
        self.idempotent = idempotent
        self.deadline = deadline
        self.attempts = attempts
    }

    /// After a failed attempt (retryable status or transport failure): retry, or why not.
    /// Withdraws from the budget only when the answer is to retry.
    mutating func decide(
        retryAfter: String?, shuttingDown: Bool = false,
        now: ContinuousClock.Instant = .now, random: Double = .random(in: 0...1)
    ) -> Decision {
        guard !shuttingDown else { return .stop(.notRetryable("the pool is shutting down")) }
        guard idempotent else {
            return .stop(.notRetryable("the method is not idempotent and the request is not marked idempotent"))
        }
        guard attempts < policy.maxAttempts else { return .stop(.maxAttempts(attempts)) }
        var delay = policy.backoff(afterAttempt: attempts, random: random)
        if let retryAfter, let seconds = Int(retryAfter.filter { !$0.isWhitespace }), seconds >= 0 {
            let asked = Duration.seconds(seconds)
            guard asked <= policy.maxRetryAfter else {
                return .stop(.notRetryable("Retry-After \(seconds) s exceeds retryPolicy.maxRetryAfter (\(policy.maxRetryAfter))"))
            }
            delay = max(delay, asked)
        }
        guard now + delay < deadline else { return .stop(.deadline) }
        guard budget.withdraw() else { return .stop(.budgetExhausted) }
        attempts += 1
        return .retry(after: delay)
    }
}
