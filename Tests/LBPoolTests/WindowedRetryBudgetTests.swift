import Synchronization
import Testing
@testable import LBPool

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let instant = Mutex(ContinuousClock.now)
    var now: ContinuousClock.Instant { instant.withLock { $0 } }
    func advance(_ duration: Duration) { instant.withLock { $0 += duration } }
}

@Suite struct WindowedRetryBudgetTests {
    func budget(_ clock: ManualClock, ratio: Double = 0.2, floor: Int = 10, window: Duration = .seconds(10)) throws -> WindowedRetryBudget {
        try WindowedRetryBudget(percentCanRetry: ratio, minRetriesPerSecond: floor, window: window, now: { clock.now })
    }

    func withdrawAll(_ budget: WindowedRetryBudget) -> Int {
        var count = 0
        while budget.withdraw() { count += 1 }
        return count
    }

    @Test func retriesAreBoundedByRatioTimesRequestsPlusFloorTimesWindow() throws {
        let clock = ManualClock()
        let budget = try budget(clock)
        for _ in 0..<1000 { budget.deposit() }
        // 0.2 × 1000 + 10/s × 10 s
        #expect(withdrawAll(budget) == 300)
        #expect(!budget.withdraw())
    }

    @Test func withoutRequestsOnlyTheFloorIsLeft() throws {
        let clock = ManualClock()
        let budget = try budget(clock, floor: 3, window: .seconds(5))
        #expect(withdrawAll(budget) == 15)
    }

    @Test func expiredWithdrawalsFreeBudgetAgain() throws {
        let clock = ManualClock()
        let budget = try budget(clock, ratio: 0, floor: 1, window: .seconds(10))
        #expect(withdrawAll(budget) == 10)
        clock.advance(.seconds(5))
        #expect(!budget.withdraw(), "the withdrawals are still inside the window")
        clock.advance(.seconds(5))
        #expect(withdrawAll(budget) == 10, "a whole window later every withdrawal has expired")
    }

    @Test func expiredDepositsNoLongerCount() throws {
        let clock = ManualClock()
        let budget = try budget(clock, ratio: 0.5, floor: 0, window: .seconds(10))
        for _ in 0..<100 { budget.deposit() }
        clock.advance(.seconds(11))
        #expect(!budget.withdraw())
        for _ in 0..<10 { budget.deposit() }
        #expect(withdrawAll(budget) == 5)
    }

    @Test func theBoundHoldsOverAnySlidingWindow() throws {
        let clock = ManualClock()
        let budget = try budget(clock, ratio: 0.2, floor: 2, window: .seconds(10))
        var log: [(second: Int, requests: Int, retries: Int)] = []
        for second in 0..<60 {
            let requests = (second * 37) % 50
            for _ in 0..<requests { budget.deposit() }
            var retries = 0
            for _ in 0..<(requests / 2 + 5) where budget.withdraw() { retries += 1 }
            log.append((second, requests, retries))
            clock.advance(.seconds(1))
        }
        for end in 10...60 {
            let window = log[(end - 10)..<end]
            let requests = window.reduce(0) { $0 + $1.requests }
            let retries = window.reduce(0) { $0 + $1.retries }
            #expect(Double(retries) <= 0.2 * Double(requests) + 2 * 10, "window ending at \(end): \(retries) retries for \(requests) requests")
        }
    }

    @Test func concurrentUseKeepsTheBound() async throws {
        let clock = ManualClock()
        let budget = try budget(clock, ratio: 0.1, floor: 1, window: .seconds(10))
        let granted = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    var granted = 0
                    for _ in 0..<500 {
                        budget.deposit()
                        if budget.withdraw() { granted += 1 }
                    }
                    return granted
                }
            }
            return await group.reduce(0, +)
        }
        #expect(granted <= 800 + 10, "0.1 × 8000 requests + 1/s × 10 s")
        #expect(granted >= 700, "the budget is not starved either: \(granted)")
    }

    @Test func badParametersAreNamed() {
        #expect(throws: LBPoolConfigurationError(setting: "retryBudget.percentCanRetry", value: "1.5", reason: "must be in 0...1")) {
            try WindowedRetryBudget(percentCanRetry: 1.5)
        }
        #expect(throws: LBPoolConfigurationError.self) { try WindowedRetryBudget(minRetriesPerSecond: -1) }
        #expect(throws: LBPoolConfigurationError.self) { try WindowedRetryBudget(window: .milliseconds(10)) }
    }
}
