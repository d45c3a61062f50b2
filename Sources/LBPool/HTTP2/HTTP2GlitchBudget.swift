/// How many "glitches" a server may cause: frames that are harmless one at a time but cost the
/// client work for nothing in numbers (RFC 9113 §10.5): PING and SETTINGS frames to answer,
/// PRIORITY and unknown frames, empty DATA and CONTINUATION frames, frames on closed streams,
/// PING acknowledgements nobody asked for. A token bucket: `burst` glitches at once, refilled
/// at `perSecond`. A value type; the caller passes the time.
struct HTTP2GlitchBudget {
    let burst: Int
    let perSecond: Int
    private var tokens: Int
    /// When `tokens` was last refilled, in nanoseconds of a monotonic clock.
    private var refilledAt: Int64

    init(burst: Int, perSecond: Int, now: Int64) {
        self.burst = burst
        self.perSecond = perSecond
        self.tokens = burst
        self.refilledAt = now
    }

    /// Spends `count` glitches at `now`; returns false once the budget is gone.
    mutating func spend(_ count: Int, now: Int64) -> Bool {
        guard count > 0 else { return tokens >= 0 }
        if tokens < count, perSecond > 0 {
            // Refill only when needed: most connections never get here.
            let elapsed = max(0, now - refilledAt)
            let earned = Int(min(Int64(burst), elapsed / (1_000_000_000 / Int64(perSecond))))
            if earned > 0 {
                tokens = min(burst, tokens + earned)
                refilledAt = now
            }
        }
        tokens -= count
        return tokens >= 0
    }
}
