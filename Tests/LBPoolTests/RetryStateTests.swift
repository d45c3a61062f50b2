import Synchronization
import Testing
@testable import LBPool

@Suite struct RetryStateTests {
    let deadline = ContinuousClock.now + .seconds(30)

    func state(_ configure: (inout RetryPolicy) -> Void = { _ in }, idempotent: Bool = true, budget: any RetryBudget = UnlimitedRetryBudget()) -> RetryState {
        var policy = RetryPolicy()
        configure(&policy)
        return RetryState(policy: policy, budget: budget, idempotent: idempotent, deadline: deadline)
    }

    @Test func retriesUpToMaxAttemptsWithFullJitterBackoff() {
        var retries = state()
        #expect(retries.decide(retryAfter: nil, random: 1) == .retry(after: .milliseconds(25)))
        #expect(retries.decide(retryAfter: nil, random: 0.5) == .retry(after: .milliseconds(25)))
        #expect(retries.decide(retryAfter: nil, random: 1) == .stop(.maxAttempts(3)))
        #expect(retries.attempts == 3)
    }

    @Test func backoffCeilingDoublesUpToTheMaximum() {
        let policy = RetryPolicy()
        #expect(policy.backoffCeiling(afterAttempt: 1) == .milliseconds(25))
        #expect(policy.backoffCeiling(afterAttempt: 2) == .milliseconds(50))
        #expect(policy.backoffCeiling(afterAttempt: 6) == .milliseconds(800))
        #expect(policy.backoffCeiling(afterAttempt: 7) == .seconds(1))
        #expect(policy.backoffCeiling(afterAttempt: 40) == .seconds(1))
    }

    @Test func nonIdempotentRequestsAreNotRetried() {
        var retries = state(idempotent: false)
        guard case .stop(.notRetryable) = retries.decide(retryAfter: nil) else {
            Issue.record("a POST was retried")
            return
        }
    }

    @Test func retryAfterIsHonouredUpToItsCap() {
        var retries = state { $0.maxAttempts = 5 }
        #expect(retries.decide(retryAfter: "1", random: 0) == .retry(after: .seconds(1)))
        guard case .stop(.notRetryable(let why)) = retries.decide(retryAfter: "30") else {
            Issue.record("a 30 s Retry-After was honoured")
            return
        }
        #expect(why.contains("Retry-After 30 s"))
    }

    @Test func noRetryWhileThePoolShutsDown() {
        var retries = state()
        #expect(retries.decide(retryAfter: nil, shuttingDown: true) == .stop(.notRetryable("the pool is shutting down")))
    }

    @Test func noRetryPastTheDeadline() {
        var retries = RetryState(policy: RetryPolicy(), budget: UnlimitedRetryBudget(), idempotent: true, deadline: .now + .milliseconds(10))
        #expect(retries.decide(retryAfter: "1") == .stop(.deadline))
    }

    @Test func anEmptyBudgetStopsRetries() throws {
        let clock = ManualClock()
        let budget = try WindowedRetryBudget(percentCanRetry: 0, minRetriesPerSecond: 0, window: .seconds(1), now: { clock.now })
        var retries = state(budget: budget)
        #expect(retries.decide(retryAfter: nil) == .stop(.budgetExhausted))
        #expect(retries.attempts == 1)
    }
}
