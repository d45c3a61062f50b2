/// Reconciles resolved addresses with endpoints and keeps each endpoint at `minConnections`
/// live (connecting or ready) subconnections. Pure: every event returns actions.
///
/// ```
///  address added ──▶ endpoint: dial × minConnections
///  subconnection ready ──▶ publish picker, reset backoff, schedule its rotation,
///                          drain one connection waiting for its replacement (make-before-break)
///  rotation due ──▶ mark it rotating (still serving), dial its replacement
///  subconnection draining (was serving) ──▶ publish picker, dial replacement if below minimum
///  subconnection closed before ready ──▶ reconnect after backoff
///  address removed ──▶ drain its subconnections, drop the endpoint, publish picker
///  (from DNS, or from this client's subset: ``RendezvousSubset``)
///  connection wanted on event loop L ──▶ dial one there, unless one is open on L or at maximum
/// ```
///
/// Each connection is placed on one of the pool's `eventLoops` (an index; 0 is the pool's home
/// loop, where tasks of ``PoolTaskExecutor`` start): the warm ones on the home loop; one asked
/// for by a request on a loop where the address has none (``connectionWanted(_:onLoop:)``) on
/// that loop; one more for full connections on the loop of the request that found them full;
/// a rotation's replacement on the loop of the connection it replaces. One loop carries a
/// pool's requests until requests come from others, which is the cheapest per request: a loop
/// with more to do per wake-up writes more requests per system call.
struct AddressReconciliation: Sendable {
    enum SubState: Sendable, Equatable {
        case connecting
        case ready
        /// Past its lifetime: still serving until its replacement is ready.
        case rotating
        case draining

        /// Takes requests.
        var isServing: Bool { self == .ready || self == .rotating }
    }

    struct Endpoint: Sendable, Equatable {
        var subconnections: [SubconnectionID: SubState] = [:]
        /// The event loop of each subconnection.
        var loops: [SubconnectionID: Int] = [:]
        /// Dials that failed since the last ready connection.
        var failedAttempts = 0
        var reconnectScheduled = false

        /// Connections that count towards the minimum: connecting or ready, not rotating out.
        var live: Int {
            subconnections.values.count { $0 == .connecting || $0 == .ready }
        }

        /// Connections that are not draining.
        var open: Int {
            subconnections.values.count { $0 != .draining }
        }
    }

    enum Action: Sendable, Equatable {
        /// Open a connection on event loop `loop` (an index into the pool's loops).
        case dial(ResolvedAddress, SubconnectionID, loop: Int)
        case drain(SubconnectionID, ConnectionCloseReason)
        case scheduleReconnect(ResolvedAddress, attempt: Int)
        /// Start the lifetime clock of a ready subconnection.
        case scheduleRotation(ResolvedAddress, SubconnectionID)
        case addressAdded(ResolvedAddress)
        /// The endpoint is gone: its address left DNS (``ConnectionCloseReason/addressRemoved``)
        /// or the subset (``ConnectionCloseReason/leftSubset``).
        case addressRemoved(ResolvedAddress, ConnectionCloseReason)
        /// The set of serving subconnections changed.
        case publish
        /// Shut down and nothing is left open.
        case finished
    }

    let minConnections: Int
    let maxConnections: Int
    let rotates: Bool
    /// The pool's event loops, at least 1.
    let eventLoops: Int
    private(set) var endpoints: [ResolvedAddress: Endpoint] = [:]
    /// Subconnections of removed addresses, draining until they close.
    private(set) var retiring: [SubconnectionID: ResolvedAddress] = [:]
    private(set) var isShuttingDown = false
    private var nextID: UInt64 = 0

    init(minConnections: Int, maxConnections: Int? = nil, rotates: Bool = false, eventLoops: Int = 1) {
        self.minConnections = minConnections
        self.maxConnections = max(maxConnections ?? minConnections, minConnections)
        self.rotates = rotates
        self.eventLoops = max(eventLoops, 1)
    }

    // MARK: - Resolution

    /// The addresses to keep endpoints for: every resolved address, or this client's subset of
    /// them. An endpoint whose address is not among them drains its subconnections, for
    /// ``ConnectionCloseReason/leftSubset`` if its address is in `stillResolved` (resolved, but
    /// out of the subset), for ``ConnectionCloseReason/addressRemoved`` otherwise.
    mutating func addressesResolved(_ addresses: [ResolvedAddress], stillResolved: Set<ResolvedAddress> = []) -> [Action] {
        guard !isShuttingDown else { return [] }
        var actions: [Action] = []
        let wanted = Set(addresses)
        // Only the removed ones are sorted (for a stable order of actions): a change of a few
        // addresses in a large set stays cheap.
        let removed = endpoints.keys.filter { !wanted.contains($0) }.sorted { ($0.ip, $0.port) < ($1.ip, $1.port) }
        for address in removed {
            guard let endpoint = endpoints[address] else { continue }
            let reason: ConnectionCloseReason = stillResolved.contains(address) ? .leftSubset : .addressRemoved
            actions.append(.addressRemoved(address, reason))
            for (id, state) in endpoint.subconnections.sorted(by: { $0.key < $1.key }) {
                retiring[id] = address
                if state != .draining { actions.append(.drain(id, reason)) }
            }
            endpoints[address] = nil
            actions.append(.publish)
        }
        for address in addresses where endpoints[address] == nil {
            endpoints[address] = Endpoint()
            actions.append(.addressAdded(address))
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
            // Make-before-break: this connection replaces the oldest one past its lifetime,
            // on its own loop if one is.
            let loop = endpoint.loops[id]
            let rotating = endpoint.subconnections.filter { $0.value == .rotating }.keys
            if let rotated = rotating.filter({ endpoint.loops[$0] == loop }).min() ?? rotating.min() {
                endpoint.subconnections[rotated] = .draining
                actions.append(.drain(rotated, .lifetimeExpired))
            }
            endpoints[address] = endpoint
            if rotates && !isShuttingDown { actions.append(.scheduleRotation(address, id)) }
            actions.append(.publish)
        case .draining:
            endpoint.subconnections[id] = .draining
            endpoints[address] = endpoint
            if current.isServing { actions.append(.publish) }
            if current == .ready { actions += topUp(address) }
        case .closed(_, let wasReady):
            endpoint.subconnections[id] = nil
            endpoint.loops[id] = nil
            if current.isServing { actions.append(.publish) }
            if !wasReady { endpoint.failedAttempts += 1 }
            endpoints[address] = endpoint
            actions += wasReady ? topUp(address) : scheduleReconnectIfNeeded(address)
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

    /// The subconnection reached its maximum lifetime: keep it serving, dial its replacement on
    /// its loop.
    mutating func rotationDue(_ id: SubconnectionID, address: ResolvedAddress) -> [Action] {
        guard !isShuttingDown, var endpoint = endpoints[address], endpoint.subconnections[id] == .ready else { return [] }
        endpoint.subconnections[id] = .rotating
        guard !endpoint.reconnectScheduled else {
            endpoints[address] = endpoint
            return []
        }
        let action = dial(address, into: &endpoint, loop: endpoint.loops[id] ?? 0)
        endpoints[address] = endpoint
        return [action]
    }

    /// Every serving connection of the address is at the server's stream limit: dial one more,
    /// up to `maxConnections`, unless one is already being dialled. It goes on event loop `loop`,
    /// or with `nil` on the loop that has the fewest of the address's connections (the lowest
    /// such), which spreads them over the loops.
    mutating func connectionsFull(_ address: ResolvedAddress, onLoop loop: Int? = 0) -> [Action] {
        guard !isShuttingDown, var endpoint = endpoints[address], !endpoint.reconnectScheduled else { return [] }
        guard endpoint.open < maxConnections, !endpoint.subconnections.values.contains(.connecting) else { return [] }
        let chosen: Int
        if let loop {
            chosen = (0..<eventLoops).contains(loop) ? loop : 0
        } else {
            var counts = [Int](repeating: 0, count: eventLoops)
            for placed in endpoint.loops.values where (0..<eventLoops).contains(placed) { counts[placed] += 1 }
            chosen = counts.indices.min { (counts[$0], $0) < (counts[$1], $1) } ?? 0
        }
        let action = dial(address, into: &endpoint, loop: chosen)
        endpoints[address] = endpoint
        return [action]
    }

    /// A request running on event loop `loop` picked the address, which has no connection on
    /// that loop: dial one there, so that the loop's next requests are written without a
    /// handoff between threads. Nothing if one is open or connecting there, the address is at
    /// `maxConnections`, or its dials are backing off.
    mutating func connectionWanted(_ address: ResolvedAddress, onLoop loop: Int) -> [Action] {
        guard !isShuttingDown, (0..<eventLoops).contains(loop), var endpoint = endpoints[address], !endpoint.reconnectScheduled
        else { return [] }
        let onLoop = endpoint.subconnections.contains { $0.value != .draining && endpoint.loops[$0.key] == loop }
        guard !onLoop, endpoint.open < maxConnections else { return [] }
        let action = dial(address, into: &endpoint, loop: loop)
        endpoints[address] = endpoint
        return [action]
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
            actions.append(dial(address, into: &endpoint, loop: 0))
        }
        endpoints[address] = endpoint
        return actions
    }

    private mutating func dial(_ address: ResolvedAddress, into endpoint: inout Endpoint, loop: Int) -> Action {
        nextID += 1
        let id = SubconnectionID(nextID)
        endpoint.subconnections[id] = .connecting
        endpoint.loops[id] = loop
        return .dial(address, id, loop: loop)
    }

    private mutating func scheduleReconnectIfNeeded(_ address: ResolvedAddress) -> [Action] {
        guard !isShuttingDown, var endpoint = endpoints[address], !endpoint.reconnectScheduled,
            endpoint.live < minConnections
        else { return [] }
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
