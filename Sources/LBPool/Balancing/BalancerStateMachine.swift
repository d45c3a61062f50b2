/// Every decision of the balancer, in one value: which addresses have endpoints (the resolution,
/// or this client's subset of it), the life of their connections (``AddressReconciliation``),
/// passive ejection (``OutlierEjection``), active health (``ActiveHealth``), and the stream caps
/// learned from GOAWAYs (``StreamCapEstimate``). Events in, actions out: it reads no clock, does
/// no I/O, and draws its jitter from a seeded generator it owns. ``Balancer`` holds it under one
/// lock and performs the actions.
///
/// ```
///  resolved ──▶ (subset: rank, choose members) ──▶ reconcile: dial / drain, report
///  subconnection ready ──▶ publish, start health checks, start its rotation timer
///  subconnection closed ──▶ cancel its rotation timer, forget its health results;
///                           before ready: refresh DNS, count a failure, reconnect timer
///  GOAWAY ──▶ refresh DNS, learn the stream cap (the next dials carry it)
///  failures reached ──▶ eject: publish without it, ejection timer, the subset takes the next
///  ejection timer ──▶ probing: publish with it; a success ──▶ recovered
///  health probe ──▶ unhealthy: publish without it, the subset takes the next
///  address removed ──▶ cancel its timers, forget its ejection, health and stream cap
///  shut down ──▶ drain everything, cancel every timer; finished once all closed
/// ```
///
/// A timer is named by what it is for (``Timer``); the machine keeps the set of those started
/// and not yet fired or cancelled, and ignores a firing it no longer expects.
struct BalancerStateMachine: Sendable {
    struct Settings: Sendable {
        var minConnections: Int
        var maxConnections: Int
        /// Connections are replaced at this jittered lifetime; `nil`: never.
        var rotation: Balancer.Rotation?
        var backoff: ReconnectBackoff
        /// Passive health; `nil`: off.
        var outlierDetection: OutlierEjection.Settings?
        /// Successes and failures in a row that make a connection healthy or unhealthy under
        /// active health checks; `nil`: no checks.
        var healthThresholds: HealthThresholds?
        /// This client's subset; `nil`: every resolved address.
        var subset: RendezvousSubset?
        /// The pool's event loops, which connections are placed on.
        var eventLoops: Int

        init(
            minConnections: Int, maxConnections: Int? = nil, rotation: Balancer.Rotation? = nil,
            backoff: ReconnectBackoff = ReconnectBackoff(), outlierDetection: OutlierEjection.Settings? = nil,
            healthThresholds: HealthThresholds? = nil, subset: RendezvousSubset? = nil, eventLoops: Int = 1
        ) {
            self.eventLoops = eventLoops
            self.minConnections = minConnections
            self.maxConnections = maxConnections ?? minConnections
            self.rotation = rotation
            self.backoff = backoff
            self.outlierDetection = outlierDetection
            self.healthThresholds = healthThresholds
            self.subset = subset
        }
    }

    struct HealthThresholds: Sendable, Hashable {
        var healthy: Int
        var unhealthy: Int
    }

    /// This client's subset of the resolved addresses (``RendezvousSubset``).
    struct Subset: Sendable, Equatable {
        let rendezvous: RendezvousSubset
        /// Every resolved address, best-ranked first.
        var ranking: [ResolvedAddress] = []
        var resolved: Set<ResolvedAddress> = []
        /// The members, best-ranked first.
        var members: [ResolvedAddress] = []

        /// 1 for the best-ranked resolved address.
        func rank(of address: ResolvedAddress) -> Int {
            (ranking.firstIndex(of: address) ?? ranking.count) + 1
        }

        static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.rendezvous.key == rhs.rendezvous.key && lhs.rendezvous.size == rhs.rendezvous.size
                && lhs.ranking == rhs.ranking && lhs.members == rhs.members
        }
    }

    /// What a timer is for; at most one of each runs.
    enum Timer: Hashable, Sendable {
        /// Dial an address again after its dials failed.
        case reconnect(ResolvedAddress)
        /// An ejected address has served its time: probe it.
        case ejectionEnds(ResolvedAddress)
        /// A connection reached its lifetime: replace it.
        case rotation(SubconnectionID, ResolvedAddress)

        var address: ResolvedAddress {
            switch self {
            case .reconnect(let address), .ejectionEnds(let address), .rotation(_, let address): address
            }
        }
    }

    enum Action: Sendable, Equatable {
        /// Open a connection on event loop `loop` (an index into the pool's loops); at most
        /// `streamCap` streams on it when the server's cap is known.
        case dial(ResolvedAddress, SubconnectionID, loop: Int, streamCap: Int?)
        case drain(SubconnectionID, ConnectionCloseReason)
        /// Call ``timerFired(_:)`` with `timer` after the delay, unless it is cancelled first.
        case startTimer(Timer, after: Duration)
        case cancelTimer(Timer)
        /// Probe the connection periodically (active health checks are on).
        case checkHealth(SubconnectionID)
        /// Zero the address's run of failures and say whether its next outcome is a probe's.
        case setProbation(ResolvedAddress, Bool)
        /// Count a failure of the address for outlier detection, as a failed request is counted.
        case countFailure(ResolvedAddress)
        /// The address has no endpoint any more: drop what was kept for it outside the machine.
        case forget(ResolvedAddress)
        /// Ask the resolver for a fresh lookup.
        case refreshResolution
        /// Tell listeners (``PoolEvent``).
        case report(PoolEvent.Kind, ResolvedAddress, SubconnectionID?)
        case learnedStreamCap(ResolvedAddress, Int)
        /// The subset's members changed: each member's rank.
        case subsetMembers([ResolvedAddress: Int])
        /// The set of connections that take requests changed: publish ``serving()``.
        case publish
        /// Shut down and nothing is left open.
        case finished
    }

    let settings: Settings
    private(set) var reconciliation: AddressReconciliation
    private(set) var ejection: OutlierEjection?
    private(set) var activeHealth: ActiveHealth?
    /// Per address, what its GOAWAYs say of the server's streams per connection.
    private(set) var streamCaps: [ResolvedAddress: StreamCapEstimate] = [:]
    private(set) var subset: Subset?
    /// Timers started and neither fired nor cancelled.
    private(set) var timers: Set<Timer> = []
    private var random: SeededRandom

    init(settings: Settings, seed: UInt64) {
        self.settings = settings
        self.reconciliation = AddressReconciliation(
            minConnections: settings.minConnections, maxConnections: settings.maxConnections, rotates: settings.rotation != nil,
            eventLoops: settings.eventLoops)
        self.ejection = settings.outlierDetection.map(OutlierEjection.init(settings:))
        self.activeHealth = settings.healthThresholds.map {
            ActiveHealth(healthyThreshold: $0.healthy, unhealthyThreshold: $0.unhealthy)
        }
        self.subset = settings.subset.map { Subset(rendezvous: $0) }
        self.random = SeededRandom(seed: seed)
    }

    var endpoints: [ResolvedAddress: AddressReconciliation.Endpoint] { reconciliation.endpoints }
    var isShuttingDown: Bool { reconciliation.isShuttingDown }

    // MARK: - Resolution

    /// The resolver's latest addresses. With a subset, DNS additions and removals are reported
    /// apart from joining and leaving the subset.
    mutating func resolved(_ addresses: [ResolvedAddress]) -> [Action] {
        guard var subset else { return translate(reconciliation.addressesResolved(addresses)) }
        var actions: [Action] = []
        let resolved = Set(addresses)
        for address in addresses where !subset.resolved.contains(address) {
            actions.append(.report(.addressAdded, address, nil))
        }
        for address in subset.ranking where !resolved.contains(address) {
            actions.append(.report(.addressRemoved, address, nil))
        }
        subset.ranking = subset.rendezvous.ranked(addresses)
        subset.resolved = resolved
        self.subset = subset
        return actions + reselectSubset(always: true)
    }

    // MARK: - Connections

    mutating func subconnection(_ id: SubconnectionID, address: ResolvedAddress, reported event: SubconnectionEvent) -> [Action] {
        var actions: [Action]
        switch event {
        case .ready:
            actions = [.report(.ready, address, id)]
            if activeHealth != nil { actions.append(.checkHealth(id)) }
        case .draining(let reason):
            actions = [.report(.draining(reason), address, id)]
            switch reason {
            case .goAway(let code, let lastStreamID, _):
                actions.append(.refreshResolution)
                actions += learnStreamCap(address, errorCode: code, lastStreamID: lastStreamID)
            case .protocolViolation:
                if ejection != nil { actions.append(.countFailure(address)) }
            default:
                break
            }
        case .closed(let reason, let wasReady):
            actions = [.report(.closed(reason), address, id)]
            if !wasReady {
                actions.append(.refreshResolution)
                if ejection != nil { actions.append(.countFailure(address)) }
            }
            actions += cancel(.rotation(id, address))
        }
        actions += translate(reconciliation.subconnection(id, address: address, reported: event))
        if case .closed = event, var health = activeHealth {
            let change = health.closed(id, at: address)
            activeHealth = health
            if let change { actions += healthChanged(address, to: change) }
        }
        return actions
    }

    /// Every serving connection of the address is at the server's stream limit.
    /// Every serving connection of the address is at the server's stream limit; the request
    /// that found them full runs on event loop `loop` (`nil`: spread the address's connections).
    mutating func connectionsFull(_ address: ResolvedAddress, onLoop loop: Int? = 0) -> [Action] {
        translate(reconciliation.connectionsFull(address, onLoop: loop))
    }

    /// A request on event loop `loop` picked the address, which has no connection there.
    mutating func connectionWanted(_ address: ResolvedAddress, onLoop loop: Int) -> [Action] {
        translate(reconciliation.connectionWanted(address, onLoop: loop))
    }

    mutating func timerFired(_ timer: Timer) -> [Action] {
        guard timers.remove(timer) != nil else { return [] }
        switch timer {
        case .reconnect(let address):
            return translate(reconciliation.reconnectDue(address))
        case .rotation(let id, let address):
            return translate(reconciliation.rotationDue(id, address: address))
        case .ejectionEnds(let address):
            return applyEjection { $0.ejectionEnded(address) }
        }
    }

    // MARK: - Health

    /// `consecutiveFailures` failures in a row, or one on probation, at `address`. The share of
    /// addresses an ejection must leave in use is counted over the endpoints, or with a subset
    /// over every resolved address, since any of them can stand in: a subset of one can still
    /// eject its member.
    mutating func failuresReached(_ address: ResolvedAddress) -> [Action] {
        guard reconciliation.endpoints[address] != nil else { return [] }
        let addresses = subset?.resolved.count ?? reconciliation.endpoints.count
        return applyEjection { $0.failuresReached(address, addresses: addresses) }
    }

    /// A request on probation at `address` succeeded.
    mutating func probeSucceeded(_ address: ResolvedAddress) -> [Action] {
        applyEjection { $0.succeeded(address) }
    }

    /// An active health check of connection `id` at `address` finished.
    mutating func probed(_ id: SubconnectionID, at address: ResolvedAddress, healthy: Bool) -> [Action] {
        guard var health = activeHealth, reconciliation.endpoints[address]?.subconnections[id] != nil else { return [] }
        let change = health.probed(id, at: address, healthy: healthy)
        activeHealth = health
        return change.map { healthChanged(address, to: $0) } ?? []
    }

    /// Ejected or on probation, or failing its health checks: the subset looks past it.
    func isOut(_ address: ResolvedAddress) -> Bool {
        if let ejection, ejection.health(of: address) != .healthy { return true }
        return activeHealth?.state(of: address) == .unhealthy
    }

    /// Ejected, or failing its health checks: takes no requests.
    func takesNoRequests(_ address: ResolvedAddress) -> Bool {
        ejection?.health(of: address) == .ejected || activeHealth?.state(of: address) == .unhealthy
    }

    // MARK: - Shutdown

    /// Drains everything and cancels every timer; `finished` follows once the last connection
    /// closed.
    mutating func shutDown() -> [Action] {
        let cancelled = timers.map(Action.cancelTimer)
        timers = []
        return cancelled + translate(reconciliation.shutDown())
    }

    // MARK: - What the shell reads

    /// The connections that take requests, by address in address order, each address's in id
    /// order; addresses that are ejected or unhealthy, or have none, are left out.
    func serving() -> [(address: ResolvedAddress, subconnections: [SubconnectionID])] {
        reconciliation.endpoints
            .compactMap { address, endpoint -> (address: ResolvedAddress, subconnections: [SubconnectionID])? in
                guard !takesNoRequests(address) else { return nil }
                let ready = endpoint.subconnections.filter { $0.value.isServing }.keys.sorted()
                return ready.isEmpty ? nil : (address, ready)
            }
            .sorted { ($0.address.ip, $0.address.port) < ($1.address.ip, $1.address.port) }
    }

    /// Connections per address, by state, for the gauges.
    func connectionCounts() -> [ResolvedAddress: PoolMetrics.ConnectionCounts] {
        reconciliation.endpoints.mapValues { endpoint in
            let states = endpoint.subconnections.values
            return (states.count { $0 == .connecting }, states.count { $0.isServing }, states.count { $0 == .draining })
        }
    }

    // MARK: - Helpers

    private mutating func start(_ timer: Timer, after delay: Duration) -> Action {
        timers.insert(timer)
        return .startTimer(timer, after: delay)
    }

    private mutating func cancel(_ timer: Timer) -> [Action] {
        timers.remove(timer) == nil ? [] : [.cancelTimer(timer)]
    }

    private mutating func learnStreamCap(_ address: ResolvedAddress, errorCode: HTTP2Code, lastStreamID: Int) -> [Action] {
        var estimate = streamCaps[address] ?? StreamCapEstimate()
        let before = estimate.cap
        estimate.goAwayReceived(errorCode: errorCode, lastStreamID: lastStreamID)
        streamCaps[address] = estimate
        guard let after = estimate.cap, after != before else { return [] }
        return [.learnedStreamCap(address, after)]
    }

    private mutating func applyEjection(_ transition: (inout OutlierEjection) -> [OutlierEjection.Action]) -> [Action] {
        guard var ejection else { return [] }
        let changes = transition(&ejection)
        self.ejection = ejection
        guard !changes.isEmpty else { return [] }
        var actions: [Action] = [.publish]
        for change in changes {
            switch change {
            case .eject(let address, let duration):
                actions += [
                    .setProbation(address, false), .report(.ejected(for: duration), address, nil),
                    start(.ejectionEnds(address), after: duration),
                ]
            case .probe(let address):
                actions += [.setProbation(address, true), .report(.probing, address, nil)]
            case .recovered(let address):
                actions += [.setProbation(address, false), .report(.recovered, address, nil)]
            }
        }
        // The subset follows, once the change is reported.
        return actions + reselectSubset()
    }

    private mutating func healthChanged(_ address: ResolvedAddress, to state: EndpointHealthState) -> [Action] {
        [.publish, .report(.health(state), address, nil)] + reselectSubset()
    }

    /// Hands the subset of the latest ranking to the reconciliation, if it changed (or
    /// `always`, after a resolution).
    private mutating func reselectSubset(always: Bool = false) -> [Action] {
        guard var subset else { return [] }
        let members = Array(subset.rendezvous.members(of: subset.ranking, out: isOut))
        guard always || members != subset.members else { return [] }
        subset.members = members
        self.subset = subset
        return translate(reconciliation.addressesResolved(members, stillResolved: subset.resolved))
    }

    /// The reconciliation's actions, with what the other parts add to them: stream caps on
    /// dials, jittered delays on timers, reports, and forgetting a removed address.
    private mutating func translate(_ actions: [AddressReconciliation.Action]) -> [Action] {
        var result: [Action] = []
        var membershipChanged = false
        for action in actions {
            switch action {
            case .dial(let address, let id, let loop):
                result.append(.dial(address, id, loop: loop, streamCap: streamCaps[address]?.cap))
                result.append(.report(.connecting, address, id))
            case .drain(let id, let reason):
                result.append(.drain(id, reason))
            case .scheduleReconnect(let address, let attempt):
                let delay = settings.backoff.delay(attempt: attempt, random: random.signedUnit())
                result.append(start(.reconnect(address), after: delay))
            case .scheduleRotation(let address, let id):
                if let rotation = settings.rotation {
                    result.append(start(.rotation(id, address), after: rotation.jittered(random: random.signedUnit())))
                }
            case .addressAdded(let address):
                membershipChanged = true
                result.append(.report(subset.map { .joinedSubset(rank: $0.rank(of: address)) } ?? .addressAdded, address, nil))
            case .addressRemoved(let address, _):
                membershipChanged = true
                streamCaps[address] = nil
                activeHealth?.removed(address)
                ejection?.removed(address)
                for timer in timers.filter({ $0.address == address }) { result += cancel(timer) }
                result.append(.forget(address))
                result.append(.report(subset == nil ? .addressRemoved : .leftSubset, address, nil))
            case .publish:
                result.append(.publish)
            case .finished:
                result.append(.finished)
            }
        }
        if membershipChanged, let subset {
            result.append(.subsetMembers(Dictionary(uniqueKeysWithValues: subset.members.map { ($0, subset.rank(of: $0)) })))
        }
        return result
    }
}
