/// Active health checks: the results of each connection's periodic probe request, turned into
/// the health of its address. Pure: results in, state changes out.
///
/// A connection is `unknown` until its first result, then `healthy` after `healthyThreshold`
/// successes in a row and `unhealthy` after `unhealthyThreshold` failures in a row. An address
/// is `unknown` until one of its connections has a state, `unhealthy` when all checked ones are,
/// `degraded` when some are, `healthy` otherwise. Unhealthy addresses take no requests.
struct ActiveHealth: Sendable {
    private struct Connection: Sendable {
        var state: EndpointHealthState = .unknown
        var successes = 0
        var failures = 0
    }

    let healthyThreshold: Int
    let unhealthyThreshold: Int
    private var connections: [ResolvedAddress: [SubconnectionID: Connection]] = [:]
    private(set) var states: [ResolvedAddress: EndpointHealthState] = [:]

    init(healthyThreshold: Int, unhealthyThreshold: Int) {
        self.healthyThreshold = healthyThreshold
        self.unhealthyThreshold = unhealthyThreshold
    }

    func state(of address: ResolvedAddress) -> EndpointHealthState {
        states[address] ?? .unknown
    }

    /// A probe of `id` at `address` finished; returns the address's new state if it changed.
    mutating func probed(_ id: SubconnectionID, at address: ResolvedAddress, healthy: Bool) -> EndpointHealthState? {
        var connection = connections[address]?[id] ?? Connection()
        if healthy {
            connection.successes += 1
            connection.failures = 0
            if connection.successes >= healthyThreshold { connection.state = .healthy }
        } else {
            connection.failures += 1
            connection.successes = 0
            if connection.failures >= unhealthyThreshold { connection.state = .unhealthy }
        }
        connections[address, default: [:]][id] = connection
        return recompute(address)
    }

    /// The connection closed: its results no longer count.
    mutating func closed(_ id: SubconnectionID, at address: ResolvedAddress) -> EndpointHealthState? {
        guard connections[address]?.removeValue(forKey: id) != nil else { return nil }
        return recompute(address)
    }

    mutating func removed(_ address: ResolvedAddress) {
        connections[address] = nil
        states[address] = nil
    }

    private mutating func recompute(_ address: ResolvedAddress) -> EndpointHealthState? {
        let checked = (connections[address] ?? [:]).values.map(\.state).filter { $0 != .unknown }
        let state: EndpointHealthState
        if checked.isEmpty {
            state = .unknown
        } else if checked.allSatisfy({ $0 == .unhealthy }) {
            state = .unhealthy
        } else if checked.contains(.unhealthy) {
            state = .degraded
        } else {
            state = .healthy
        }
        guard states[address] ?? .unknown != state else { return nil }
        states[address] = state
        return state
    }
}

/// What the active health checks say about an address.
public enum EndpointHealthState: String, Sendable, Hashable {
    /// Not checked yet (or checks are off). Takes requests.
    case unknown
    /// Every checked connection passes. Takes requests.
    case healthy
    /// Some connections fail their checks. Takes requests, on the passing connections' address.
    case degraded
    /// Every checked connection fails. Takes no requests.
    case unhealthy
}
