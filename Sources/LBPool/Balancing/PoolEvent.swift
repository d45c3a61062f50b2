/// Something that happened to the pool's addresses or connections, for logs, metrics and tests.
public struct PoolEvent: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The address appeared in a resolution.
        case addressAdded
        /// The address left the resolved set; its connections drain.
        case addressRemoved
        /// With ``LBPool/Configuration/subset``: the address entered this client's subset, at
        /// `rank` (1 is the best-ranked of the resolved addresses); its connections are dialled.
        case joinedSubset(rank: Int)
        /// With ``LBPool/Configuration/subset``: the address left this client's subset; its
        /// connections drain.
        case leftSubset
        /// A connection to the address is being dialled.
        case connecting
        /// The connection can take requests.
        case ready
        /// The connection takes no new requests; its open streams finish.
        case draining(ConnectionCloseReason)
        /// The connection is closed.
        case closed(ConnectionCloseReason)
        /// The address failed too often and takes no requests for this long.
        case ejected(for: Duration)
        /// The ejection ended: the next request is the address's probe.
        case probing
        /// The probe succeeded: the address is healthy again.
        case recovered
        /// The active health checks changed the address's state.
        case health(EndpointHealthState)
    }

    public var kind: Kind
    public var address: ResolvedAddress
    /// The connection, for connection events; `nil` for address events.
    public var subconnection: SubconnectionID?
    public var time: ContinuousClock.Instant

    public init(kind: Kind, address: ResolvedAddress, subconnection: SubconnectionID?, time: ContinuousClock.Instant = .now) {
        self.kind = kind
        self.address = address
        self.subconnection = subconnection
        self.time = time
    }

    public var description: String {
        let connection = subconnection.map { " \($0)" } ?? ""
        switch kind {
        case .addressAdded: return "\(address) added"
        case .addressRemoved: return "\(address) removed"
        case .joinedSubset(let rank): return "\(address) joined the subset at rank \(rank)"
        case .leftSubset: return "\(address) left the subset"
        case .connecting: return "\(address)\(connection) connecting"
        case .ready: return "\(address)\(connection) ready"
        case .draining(let reason): return "\(address)\(connection) draining: \(reason)"
        case .closed(let reason): return "\(address)\(connection) closed: \(reason)"
        case .ejected(let duration): return "\(address) ejected for \(duration)"
        case .probing: return "\(address) probing"
        case .recovered: return "\(address) recovered"
        case .health(let state): return "\(address) health \(state.rawValue)"
        }
    }
}
