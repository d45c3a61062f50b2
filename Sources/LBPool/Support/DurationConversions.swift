import NIOCore

// Conversions between Swift's `Duration`, NIO's `TimeAmount` and plain numbers, in one place.

extension Duration {
    /// In seconds, with the fraction.
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }

    /// Whole milliseconds, rounded down.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Whole nanoseconds, rounded down (wrapping past about 292 years).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

extension UInt64 {
    /// The value as an `Int64`, at most `Int64.max`.
    var clampedToInt64: Int64 { Int64(clamping: self) }
}
