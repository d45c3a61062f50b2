/// The pool's state at one moment, for debugging endpoints and logs.
public struct PoolSnapshot: Sendable, CustomStringConvertible {
    public struct Connection: Sendable {
        public enum State: String, Sendable {
            case connecting, ready, rotating, draining
        }

        public var id: SubconnectionID
        public var state: State
        /// Time since the connection was dialled.
        public var age: Duration
        /// Requests in flight on it.
        public var inFlight: Int
        /// The index of its event loop among ``LBPool/taskExecutors``' homes (0 is the pool's
        /// home loop).
        public var eventLoop: Int
        /// Requests whose stream a task on another thread opened on it, each at the cost of a
        /// handoff between threads; tasks on ``LBPool/taskExecutors`` cause none once their loop
        /// has a connection to the address.
        public var handoffs: Int
    }

    public struct Address: Sendable {
        public enum Health: String, Sendable {
            /// Taking requests.
            case healthy
            /// Failed too often; takes no requests until its ejection ends.
            case ejected
            /// Back from an ejection; its next request decides.
            case probing
        }

        public var address: ResolvedAddress
        /// Passive health (outlier detection).
        public var health: Health
        /// Active health checks' verdict; `unknown` when they are off.
        public var checks: EndpointHealthState
        public var connections: [Connection]
    }

    /// This client's subset (``LBPool/Configuration/subset``).
    public struct Subset: Sendable {
        /// The configured size.
        public var size: Int
        /// The key ranking the addresses (the configured one, or the one drawn).
        public var key: String
        /// The addresses connected to, best-ranked first: `size` in use, and any better-ranked
        /// one that is out (ejected or failing its checks) and kept to come back.
        public var members: [ResolvedAddress]
        /// Addresses of the latest resolution, in the subset or not.
        public var resolved: Int
    }

    /// Every address the pool keeps connections to, sorted, with its connections (oldest
    /// first): every address of the latest resolution, or with a ``subset`` its members.
    public var addresses: [Address]
    /// The subset, when subsetting is on; `nil` otherwise.
    public var subset: Subset?
    /// The error of the latest lookup, if it failed.
    public var resolutionError: ResolverError?
    public var isShuttingDown: Bool

    public var description: String {
        var lines: [String] = []
        if isShuttingDown { lines.append("shutting down") }
        if let resolutionError { lines.append("resolution: \(resolutionError)") }
        if let subset {
            lines.append(
                "subset of \(subset.size) (key \(subset.key)) of \(subset.resolved) addresses: \(subset.members.map(\.description).joined(separator: ", "))")
        }
        for address in addresses {
            lines.append("\(address.address) \(address.health.rawValue), checks \(address.checks.rawValue)")
            for connection in address.connections {
                lines.append(
                    "  \(connection.id) \(connection.state.rawValue) age \(connection.age) in flight \(connection.inFlight) loop \(connection.eventLoop) handoffs \(connection.handoffs)"
                )
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension LBPool {
    /// The current addresses and connections.
    public func snapshot() -> PoolSnapshot {
        let picker = balancer.pickerState.current().snapshot
        let subset = balancer.subset
        return PoolSnapshot(
            addresses: balancer.connectionSnapshot(now: .now),
            subset: subset.map {
                PoolSnapshot.Subset(size: $0.rendezvous.size, key: $0.rendezvous.key, members: $0.members, resolved: $0.resolved.count)
            },
            resolutionError: picker.resolution?.error,
            isShuttingDown: picker.isShuttingDown
        )
    }
}

extension Balancer {
    func connectionSnapshot(now: ContinuousClock.Instant) -> [PoolSnapshot.Address] {
        withState { machine, subconnections in
            machine.endpoints.map { address, endpoint in
                let connections = endpoint.subconnections.sorted { $0.key < $1.key }.map { id, state in
                    let subconnection = subconnections[id]
                    let snapshotState: PoolSnapshot.Connection.State
                    switch state {
                    case .connecting: snapshotState = .connecting
                    case .ready: snapshotState = .ready
                    case .rotating: snapshotState = .rotating
                    case .draining: snapshotState = .draining
                    }
                    return PoolSnapshot.Connection(
                        id: id,
                        state: snapshotState,
                        age: subconnection.map { now - $0.createdAt } ?? .zero,
                        inFlight: subconnection?.shared.inFlight.load(ordering: .relaxed) ?? 0,
                        eventLoop: endpoint.loops[id] ?? 0,
                        handoffs: subconnection?.shared.handoffs.load(ordering: .relaxed) ?? 0
                    )
                }
                let health: PoolSnapshot.Address.Health
                switch machine.ejection?.health(of: address) ?? .healthy {
                case .healthy: health = .healthy
                case .ejected: health = .ejected
                case .probing: health = .probing
                }
                return PoolSnapshot.Address(
                    address: address, health: health,
                    checks: machine.activeHealth?.state(of: address) ?? .unknown, connections: connections)
            }
            .sorted { ($0.address.ip, $0.address.port) < ($1.address.ip, $1.address.port) }
        }
    }
}
