/// A subconnection's identity within one pool.
public struct SubconnectionID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "#\(rawValue)" }
}

/// What a subconnection reports to its owner. Each subconnection reports `draining` at most
/// once and `closed` exactly once, in that order; `ready` comes before both if at all.
enum SubconnectionEvent: Sendable, Equatable {
    case ready
    case draining(ConnectionCloseReason)
    case closed(ConnectionCloseReason, wasReady: Bool)
}

/// Receives a subconnection's events, on its event loop. Must not block.
protocol SubconnectionDelegate: Sendable {
    func subconnection(_ id: SubconnectionID, address: ResolvedAddress, didReport event: SubconnectionEvent)
}
