/// Exponential backoff with jitter between dials of an address whose connections keep failing
/// (gRPC's connection backoff). The attempt counter resets when a connection becomes ready.
public struct ReconnectBackoff: Sendable, Hashable {
    /// Delay after the first failure. Default: 1 s.
    public var initial: Duration = .seconds(1)
    /// Growth per further failure. Default: 1.6.
    public var multiplier: Double = 1.6
    /// Upper bound of the delay. Default: 120 s.
    public var maximum: Duration = .seconds(120)
    /// Relative jitter, applied as ± this fraction. Default: 0.2.
    public var jitter: Double = 0.2

    public init() {}

    /// The delay before attempt `attempt` (1 for the first retry). `random` is in `-1...1`.
    func delay(attempt: Int, random: Double) -> Duration {
        let delay = Backoff.capped(initial: initial, multiplier: multiplier, maximum: maximum, attempt: attempt)
        return Backoff.jittered(delay, by: jitter, random: random)
    }

    func validate() throws(LBPoolConfigurationError) {
        try Validate.positive(initial, "reconnectBackoff.initial")
        try Validate.positive(maximum, "reconnectBackoff.maximum")
        guard multiplier >= 1, multiplier.isFinite else {
            throw .init(setting: "reconnectBackoff.multiplier", value: "\(multiplier)", reason: "must be at least 1")
        }
        guard (0..<1).contains(jitter) else {
            throw .init(setting: "reconnectBackoff.jitter", value: "\(jitter)", reason: "must be in 0..<1")
        }
    }
}
