import Synchronization

/// Caps how many retries a pool (or several pools sharing one budget) may add to its traffic,
/// so that retries smooth over a failing pod but cannot multiply an outage.
///
/// Every first attempt calls ``deposit()``; every retry first calls ``withdraw()`` and is only
/// sent if it returns `true`; every finished attempt calls ``record(success:)``. Transparent
/// re-sends of requests the server never processed do not touch the budget.
public protocol RetryBudget: Sendable {
    /// A request's first attempt.
    func deposit()
    /// Asks for one retry; `false` means no retry now.
    func withdraw() -> Bool
    /// An attempt ended; `success` when it produced a response that was not retried.
    func record(success: Bool)
}

/// The budget of Finagle and Linkerd: over a sliding window, retries may add at most
/// ``percentCanRetry`` of the requests, plus ``minRetriesPerSecond`` × the window.
///
/// Deposits are lock-free (an atomic counter per one-second bucket); withdrawals, which happen
/// only for retries, take a short lock so that concurrent retries cannot overshoot the bound.
public final class WindowedRetryBudget: RetryBudget {
    /// Fraction of requests that may be retried. Default: 0.2.
    public let percentCanRetry: Double
    /// Retries allowed per second regardless of traffic. Default: 10.
    public let minRetriesPerSecond: Int
    /// Length of the sliding window. Default: 10 s.
    public let window: Duration

    private let bucketCount: Int
    private let bucketLength: Duration
    /// ``bucketLength`` in nanoseconds: epochs are integer divisions, not `Duration` ones.
    private let bucketNanoseconds: Int64
    private let start: ContinuousClock.Instant
    private let now: @Sendable () -> ContinuousClock.Instant
    private let deposits: [Bucket]
    private let withdrawals: Mutex<[(epoch: Int, count: Int)]>

    /// A bucket of one ``bucketLength``: its epoch (bucket number since `start`) and its count.
    private final class Bucket: Sendable {
        let epoch = Atomic<Int>(-1)
        let count = Atomic<Int>(0)
    }

    public convenience init(percentCanRetry: Double = 0.2, minRetriesPerSecond: Int = 10, window: Duration = .seconds(10)) throws(LBPoolConfigurationError) {
        try self.init(percentCanRetry: percentCanRetry, minRetriesPerSecond: minRetriesPerSecond, window: window, now: { .now })
    }

    /// With an injected clock, for tests.
    init(percentCanRetry: Double, minRetriesPerSecond: Int, window: Duration, now: @escaping @Sendable () -> ContinuousClock.Instant)
        throws(LBPoolConfigurationError)
    {
        guard (0...1).contains(percentCanRetry) else {
            throw .init(setting: "retryBudget.percentCanRetry", value: "\(percentCanRetry)", reason: "must be in 0...1")
        }
        guard minRetriesPerSecond >= 0 else {
            throw .init(setting: "retryBudget.minRetriesPerSecond", value: "\(minRetriesPerSecond)", reason: "must not be negative")
        }
        guard window >= .seconds(1) else {
            throw .init(setting: "retryBudget.window", value: "\(window)", reason: "must be at least 1 second")
        }
        self.percentCanRetry = percentCanRetry
        self.minRetriesPerSecond = minRetriesPerSecond
        self.window = window
        self.bucketCount = max(1, Int(window.seconds.rounded()))
        self.bucketLength = window / bucketCount
        self.bucketNanoseconds = max(1, bucketLength.nanoseconds)
        self.now = now
        self.start = now()
        self.deposits = (0..<bucketCount).map { _ in Bucket() }
        self.withdrawals = Mutex(Array(repeating: (-1, 0), count: bucketCount))
    }

    private func epoch(at instant: ContinuousClock.Instant) -> Int {
        let elapsed = (instant - start).nanoseconds
        return Int(elapsed >= 0 ? elapsed / bucketNanoseconds : (elapsed - bucketNanoseconds + 1) / bucketNanoseconds)
    }

    public func deposit() {
        let epoch = epoch(at: now())
        let bucket = deposits[epoch % bucketCount]
        var seen = bucket.epoch.load(ordering: .acquiring)
        while seen < epoch {
            // First deposit of a new second in this slot: the old count has expired.
            let (exchanged, original) = bucket.epoch.compareExchange(expected: seen, desired: epoch, ordering: .acquiringAndReleasing)
            if exchanged {
                bucket.count.store(0, ordering: .releasing)
                break
            }
            seen = original
        }
        bucket.count.wrappingAdd(1, ordering: .relaxed)
    }

    public func withdraw() -> Bool {
        let epoch = epoch(at: now())
        let deposited = depositsInWindow(at: epoch)
        return withdrawals.withLock { buckets in
            var withdrawn = 0
            for bucket in buckets where bucket.epoch > epoch - bucketCount && bucket.epoch <= epoch {
                withdrawn += bucket.count
            }
            let allowance = percentCanRetry * Double(deposited) + Double(minRetriesPerSecond) * window.seconds
            guard Double(withdrawn + 1) <= allowance else { return false }
            let slot = epoch % bucketCount
            if buckets[slot].epoch != epoch { buckets[slot] = (epoch, 0) }
            buckets[slot].count += 1
            return true
        }
    }

    public func record(success: Bool) {}

    private func depositsInWindow(at epoch: Int) -> Int {
        var total = 0
        for bucket in deposits {
            let bucketEpoch = bucket.epoch.load(ordering: .acquiring)
            if bucketEpoch > epoch - bucketCount && bucketEpoch <= epoch {
                total += bucket.count.load(ordering: .relaxed)
            }
        }
        return total
    }
}

/// gRPC's retry throttling: a token count that failures lower by 1 and successes raise by
/// ``tokenRatio``, up to ``maxTokens``; retries are allowed while more than half remain.
public final class TokenBucketRetryBudget: RetryBudget {
    public let maxTokens: Int
    public let tokenRatio: Double
    /// Tokens × 1000, so that fractional ratios need no floating-point atomics.
    private let milliTokens: Atomic<Int>

    public init(maxTokens: Int = 10, tokenRatio: Double = 0.1) throws(LBPoolConfigurationError) {
        guard (1...1000).contains(maxTokens) else {
            throw .init(setting: "retryBudget.maxTokens", value: "\(maxTokens)", reason: "must be in 1...1000")
        }
        guard tokenRatio > 0, tokenRatio <= 1 else {
            throw .init(setting: "retryBudget.tokenRatio", value: "\(tokenRatio)", reason: "must be in (0, 1]")
        }
        self.maxTokens = maxTokens
        self.tokenRatio = tokenRatio
        self.milliTokens = Atomic(maxTokens * 1000)
    }

    public var tokens: Double { Double(milliTokens.load(ordering: .relaxed)) / 1000 }

    public func deposit() {}

    public func withdraw() -> Bool {
        milliTokens.load(ordering: .relaxed) > maxTokens * 500
    }

    public func record(success: Bool) {
        let delta = success ? Int(tokenRatio * 1000) : -1000
        var current = milliTokens.load(ordering: .relaxed)
        while true {
            let next = min(max(current + delta, 0), maxTokens * 1000)
            let (exchanged, original) = milliTokens.compareExchange(expected: current, desired: next, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }
}

/// A new ``WindowedRetryBudget`` with its defaults, for a pool that was given none. The default
/// parameters are valid, so the fallback is never taken.
func makeDefaultRetryBudget() -> any RetryBudget {
    (try? WindowedRetryBudget()) ?? UnlimitedRetryBudget()
}

/// A budget that never refuses: retries are bounded by the policy alone.
public struct UnlimitedRetryBudget: RetryBudget {
    public init() {}
    public func deposit() {}
    public func withdraw() -> Bool { true }
    public func record(success: Bool) {}
}
