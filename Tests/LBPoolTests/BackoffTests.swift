import Testing
@testable import LBPool

/// Capped exponential growth and jitter, which the reconnect and retry backoffs, ejection times
/// and connection lifetimes share.
@Suite struct BackoffTests {
    @Test func growthIsExponentialAndCapped() {
        let delays = (0...6).map { Backoff.capped(initial: .milliseconds(100), multiplier: 3, maximum: .seconds(5), attempt: $0) }
        #expect(delays == [.milliseconds(100), .milliseconds(100), .milliseconds(300), .milliseconds(900), .milliseconds(2700), .seconds(5), .seconds(5)])
        #expect(Backoff.capped(initial: .seconds(1), multiplier: 1.6, maximum: .seconds(120), attempt: 1000) == .seconds(120))
    }

    @Test func jitterStaysWithinItsFractionAndClampsTheRandomNumber() {
        #expect(Backoff.jittered(.seconds(10), by: 0.1, random: 0) == .seconds(10))
        #expect(Backoff.jittered(.seconds(10), by: 0.1, random: -1) == .seconds(9))
        #expect(Backoff.jittered(.seconds(10), by: 0.1, random: 5) == .seconds(11))
        #expect(Backoff.fullJitter(.seconds(2), random: 0.25) == .milliseconds(500))
        #expect(Backoff.fullJitter(.seconds(2), random: -3) == .zero)
        #expect(Backoff.fullJitter(.seconds(2), random: 3) == .seconds(2))
    }

    @Test func hugeDurationsAreBoundedNotATrap() {
        let huge = Backoff.jittered(.seconds(Int64.max / 2), by: 0.5, random: 1)
        #expect(huge > .seconds(1_000_000_000))
    }
}
