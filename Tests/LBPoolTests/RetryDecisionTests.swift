import Testing
@testable import LBPool

/// The retry-safety rules as one table: an attempt's outcome and the request's circumstances in,
/// the decision out.
@Suite struct RetryDecisionTests {
    /// A budget that grants or refuses every withdrawal, and counts them.
    final class FixedBudget: RetryBudget, @unchecked Sendable {
        // @unchecked: each test uses its own instance from one task.
        var grants: Bool
        var withdrawals = 0
        init(grants: Bool) { self.grants = grants }
        func deposit() {}
        func withdraw() -> Bool { withdrawals += 1; return grants }
        func record(success: Bool) {}
    }

    struct Row: CustomTestStringConvertible {
        var name: String
        var outcome: AttemptOutcome
        var idempotent = true
        var bodyReplayable = true
        var transportRetries = true
        var attemptsSoFar = 1
        var transparentRetries = 0
        var budget = true
        var shuttingDown = false
        var deadlineIn: Duration = .seconds(10)
        var expected: RetryDecision
        /// Whether a retry was drawn from the budget.
        var withdraws = false

        var testDescription: String { name }
    }

    static let notIdempotent = RetryStop.notRetryable("the method is not idempotent and the request is not marked idempotent")

    static let rows: [Row] = [
        // Rule 1 and 2: not processed, so sent again whatever the method, without the budget.
        Row(name: "unprocessed GET is sent again", outcome: .unprocessed, expected: .sendAgain),
        Row(name: "unprocessed POST is sent again", outcome: .unprocessed, idempotent: false, expected: .sendAgain),
        Row(name: "unprocessed with no budget is sent again", outcome: .unprocessed, budget: false, expected: .sendAgain),
        Row(name: "unprocessed while shutting down is sent again", outcome: .unprocessed, shuttingDown: true, expected: .sendAgain),
        Row(
            name: "unprocessed past the transparent bound stops", outcome: .unprocessed, transparentRetries: 10,
            expected: .stop(.notRetryable("not processed after 11 attempts"))),
        Row(
            name: "unprocessed with a consumed streamed body stops", outcome: .unprocessed, bodyReplayable: false,
            expected: .stop(.notRetryable(RetryDecision.bodyRead))),
        // Rule 3: may have been processed, so only when idempotent, replayable, allowed.
        Row(name: "transport failure of a GET is retried", outcome: .failedAfterSending, expected: .retry(after: .milliseconds(25)), withdraws: true),
        Row(name: "transport failure of a POST stops", outcome: .failedAfterSending, idempotent: false, expected: .stop(notIdempotent)),
        Row(
            name: "transport failure with a consumed body stops", outcome: .failedAfterSending, bodyReplayable: false,
            expected: .stop(.notRetryable(RetryDecision.bodyRead))),
        Row(
            name: "transport failure under a policy without transport retries stops", outcome: .failedAfterSending, transportRetries: false,
            expected: .stop(.notRetryable("the retry policy does not retry transport failures"))),
        Row(name: "transport failure at the attempt limit stops", outcome: .failedAfterSending, attemptsSoFar: 3, expected: .stop(.maxAttempts(3))),
        Row(name: "transport failure with no budget stops", outcome: .failedAfterSending, budget: false, expected: .stop(.budgetExhausted), withdraws: true),
        Row(name: "transport failure past the deadline stops", outcome: .failedAfterSending, deadlineIn: .milliseconds(10), expected: .stop(.deadline)),
        Row(
            name: "transport failure while shutting down stops", outcome: .failedAfterSending, shuttingDown: true,
            expected: .stop(.notRetryable("the pool is shutting down"))),
        Row(name: "503 of a GET is retried", outcome: .retryableStatus(retryAfter: nil), expected: .retry(after: .milliseconds(25)), withdraws: true),
        Row(name: "503 with Retry-After 1 waits a second", outcome: .retryableStatus(retryAfter: "1"), expected: .retry(after: .seconds(1)), withdraws: true),
        Row(name: "503 of a POST stops", outcome: .retryableStatus(retryAfter: nil), idempotent: false, expected: .stop(notIdempotent)),
        Row(
            name: "503 with a consumed body stops", outcome: .retryableStatus(retryAfter: nil), bodyReplayable: false,
            expected: .stop(.notRetryable(RetryDecision.bodyRead))),
        Row(
            name: "503 is retried even under a policy without transport retries", outcome: .retryableStatus(retryAfter: nil), transportRetries: false,
            expected: .retry(after: .milliseconds(25)), withdraws: true),
        Row(name: "503 with no budget stops", outcome: .retryableStatus(retryAfter: nil), budget: false, expected: .stop(.budgetExhausted), withdraws: true),
    ]

    @Test(arguments: rows)
    func theRulesDecide(_ row: Row) {
        var policy = RetryPolicy()
        policy.retriesTransportFailures = row.transportRetries
        let budget = FixedBudget(grants: true)
        let now = ContinuousClock.now
        var retries = RetryState(policy: policy, budget: budget, idempotent: true, deadline: now + .seconds(60))
        // Earlier attempts that were retried, then the row's circumstances.
        for _ in 1..<row.attemptsSoFar { _ = retries.decide(retryAfter: nil, now: now, random: 0) }
        retries = RetryState(policy: policy, budget: budget, idempotent: row.idempotent, deadline: now + row.deadlineIn, attempts: retries.attempts)
        budget.grants = row.budget
        budget.withdrawals = 0
        let decision = RetryDecision.after(
            row.outcome, bodyReplayable: row.bodyReplayable,
            transparentRetries: row.transparentRetries, maxTransparentRetries: 10,
            retries: &retries, shuttingDown: row.shuttingDown, now: now, random: 1)
        #expect(decision == row.expected)
        #expect(budget.withdrawals == (row.withdraws ? 1 : 0), "budget withdrawals")
        if case .retry = decision { #expect(retries.attempts == row.attemptsSoFar + 1) } else { #expect(retries.attempts == row.attemptsSoFar) }
    }
}
