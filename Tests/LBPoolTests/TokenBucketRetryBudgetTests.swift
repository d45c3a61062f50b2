import Synchronization
import Testing
@testable import LBPool

@Suite struct TokenBucketRetryBudgetTests {
    @Test func failuresCloseItAndSuccessesReopenIt() throws {
        let budget = try TokenBucketRetryBudget(maxTokens: 10, tokenRatio: 0.5)
        #expect(budget.withdraw())
        for _ in 0..<5 { budget.record(success: false) }
        #expect(budget.tokens == 5)
        #expect(!budget.withdraw(), "at half the tokens retries stop")
        budget.record(success: true)
        #expect(budget.tokens == 5.5)
        #expect(budget.withdraw())
        for _ in 0..<100 { budget.record(success: true) }
        #expect(budget.tokens == 10, "capped at maxTokens")
    }
}
