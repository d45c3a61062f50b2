/// Reconciles resolved addresses with endpoints and keeps each endpoint at `minConnections`
/// live (connecting or ready) subconnections. Pure: every event returns actions.
///
/// ```
///  address added ──▶ endpoint: dial × minConnections
///  subconnection ready ──▶ publish picker, reset backoff
///  subconnection draining (was ready) ──▶ publish picker, dial replacement if below minimum
///  subconnection closed before ready ──▶ reconnect after backoff
///  address removed ──▶ drain its subconnections, drop the endpoint, publish picker
/// ```
struct BalancerStateMachine: Sendable {
    enum SubState: Sendable, Equatable {
        case connecting
        case ready
        case draining
    }

    struct Endpoint: Sendable, Equatable {
        var subconnections: [SubconnectionID: SubState] = [:]
        /// Dials that failed since the last ready connection.
        var failedAttempts = 0
        var reconnectScheduled = false

        var live: Int {
            subconnections.values.count { $0 != .draining }
        }
    }

    enum Action: Sendable, Equatable {
        case dial(ResolvedAddress, SubconnectionID)
        case drain(SubconnectionID, ConnectionCloseReason)
        case scheduleReconnect(ResolvedAddress, attempt: Int)
        /// The set of ready subconnections changed.
        case publish
        /// Shut down and nothing is left open.
        case finished
    }

    let minConnections: Int
    private(set) var endpoints: [ResolvedAddress: Endpoint] = [:]
    /// Subconnections of removed addresses, draining until they close.
    private(set) var retiring: [SubconnectionID: ResolvedAddress] = [:]
    private(set) var isShuttingDown = false
    private var nextID: UInt64 = 0

    init(minConnections: Int) {
        self.minConnections = minConnections
    }

    // MARK: - Resolution

    mutating func addressesResolved(_ addresses: [ResolvedAddress]) -> [Action] {
        guard !isShuttingDown else { return [] }
        var actions: [Action] = []
        let wanted = Set(addresses)
        for (address, endpoint) in endpoints where !wanted.contains(address) {
            for (id, _) in endpoint.subconnections.sorted(by: { $0.key < $1.key }) {
                retiring[id] = address
                actions.append(.drain(id, .addressRemoved))
            }
            endpoints[address] = nil
            actions.append(.publish)
        }
        for address in addresses where endpoints[address] == nil {
            endpoints[address] = Endpoint()
            actions += topUp(address)
        }
        return Self.coalesced(actions)
    }

    // MARK: - Subconnection events

    mutating func subconnection(_ id: SubconnectionID, address: ResolvedAddress, reported event: SubconnectionEvent) -> [Action] {
        if retiring[id] != nil {
            if case .closed = event { retiring[id] = nil }
            return finishedIfDone()
        }
        guard var endpoint = endpoints[address], let current = endpoint.subconnections[id] else {
            return []
        }
        var actions: [Action] = []
        switch event {
        case .ready:
            guard current == .connecting else { return [] }
            endpoint.subconnections[id] = .ready
            endpoint.failedAttempts = 0
            endpoints[address] = endpoint
            actions.append(.publish)
        case .draining:
            endpoint.subconnections[id] = .draining
            endpoints[address] = endpoint
            if current == .ready {
                actions.append(.publish)
                actions += topUp(address)
            }
        case .closed(_, let wasReady):
            endpoint.subconnections[id] = nil
            if current == .ready { actions.append(.publish) }
            if !wasReady {
                endpoint.failedAttempts += 1
            }
            endpoints[address] = endpoint
            if !wasReady {
                actions += scheduleReconnectIfNeeded(address)
            } else {
                actions += topUp(address)
            }
            actions += finishedIfDone()
        }
        return Self.coalesced(actions)
    }

    mutating func reconnectDue(_ address: ResolvedAddress) -> [Action] {
        guard var endpoint = endpoints[address] else { return [] }
        endpoint.reconnectScheduled = false
        endpoints[address] = endpoint
        return topUp(address)
    }

    // MARK: - Shutdown

    /// Drains everything; `finished` follows once the last subconnection closed.
    mutating func shutDown() -> [Action] {
        guard !isShuttingDown else { return [] }
        isShuttingDown = true
        var actions: [Action] = []
        for (address, endpoint) in endpoints.sorted(by: { $0.key.description < $1.key.description }) {
            for (id, state) in endpoint.subconnections.sorted(by: { $0.key < $1.key }) where state != .draining {
                actions.append(.drain(id, .poolShutdown))
            }
            endpoints[address]?.reconnectScheduled = false
        }
        actions.append(.publish)
        return actions + finishedIfDone()
    }

    // MARK: - Helpers

    private mutating func topUp(_ address: ResolvedAddress) -> [Action] {
        guard !isShuttingDown, var endpoint = endpoints[address], !endpoint.reconnectScheduled else { return [] }
        var actions: [Action] = []
        while endpoint.live < minConnections {
            nextID += 1
            let id = SubconnectionID(nextID)
            endpoint.subconnections[id] = .connecting
            actions.append(.dial(address, id))
        }
        endpoints[address] = endpoint
        return actions
    }

    private mutating func scheduleReconnectIfNeeded(_ address: ResolvedAddress) -> [Action] {
        guard !isShuttingDown, var endpoint = endpoints[address], !endpoint.reconnectScheduled,
              endpoint.live < minConnections else { return [] }
        endpoint.reconnectScheduled = true
        endpoints[address] = endpoint
        return [.scheduleReconnect(address, attempt: endpoint.failedAttempts)]
    }

    private func finishedIfDone() -> [Action] {
        guard isShuttingDown, retiring.isEmpty, endpoints.values.allSatisfy({ $0.subconnections.isEmpty }) else { return [] }
        return [.finished]
    }

    /// One `publish` at the end is enough.
    private static func coalesced(_ actions: [Action]) -> [Action] {
        guard actions.contains(.publish) else { return actions }
        return actions.filter { $0 != .publish } + [.publish]
    }
}
