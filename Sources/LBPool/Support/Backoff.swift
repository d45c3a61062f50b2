/// Capped exponential growth and jitter, in one place: reconnect backoff, retry backoff, ejection
/// times and connection lifetimes are made of them. Results are whole milliseconds.
enum Backoff {
    /// `initial × multiplier^(attempt − 1)` (attempt 1 or less: `initial`), at most `maximum`.
    static func capped(initial: Duration, multiplier: Double, maximum: Duration, attempt: Int) -> Duration {
        var seconds = initial.seconds
        let cap = maximum.seconds
        for _ in 1..<max(attempt, 1) {
            seconds *= multiplier
            if seconds >= cap { break }
        }
        return milliseconds(min(seconds, cap))
    }

    /// `duration` moved by up to ± `fraction` of itself; `random` in `-1...1` (clamped) says
    /// where.
    static func jittered(_ duration: Duration, by fraction: Double, random: Double) -> Duration {
        milliseconds(duration.seconds * (1 + fraction * max(-1, min(1, random))))
    }

    /// Full jitter: a point of `0...duration`; `random` in `0...1` (clamped) says where.
    static func fullJitter(_ duration: Duration, random: Double) -> Duration {
        milliseconds(duration.seconds * max(0, min(1, random)))
    }

    /// Whole milliseconds, from 0 to about 30 000 years.
    private static func milliseconds(_ seconds: Double) -> Duration {
        .milliseconds(Int64(min(max(seconds, 0) * 1000, 1e15).rounded()))
    }
}
