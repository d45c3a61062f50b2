import Logging
import NIOCore
import Synchronization

/// Owns the endpoints of one pool: applies resolver updates, dials and drains subconnections,
/// and publishes the picker snapshot. The decisions are the ``BalancerStateMachine``'s; this
/// class performs its actions, outside the lock.
final class Balancer: SubconnectionDelegate, Sendable {
    private enum Work: Sendable {
        case endEjection(ResolvedAddress, after: Duration)
        case healthCheck(Subconnection)
        case run(Subconnection)
        case reconnect(ResolvedAddress, after: Duration)
    }

    /// Maximum connection lifetime and its relative jitter.
    struct Rotation: Sendable {
        var lifetime: Duration
        var jitter: Double

        /// The lifetime of one connection; `random` is in `-1...1`.
        func jittered(random: Double) -> Duration {
            Backoff.jittered(lifetime, by: jitter, random: random)
        }
    }

    /// This client's subset of the resolved addresses (``RendezvousSubset``).
    struct SubsetState: Sendable {
        let rendezvous: RendezvousSubset
        /// Every resolved address, best-ranked first.
        var ranking: [ResolvedAddress] = []
        var resolved: Set<ResolvedAddress> = []
        /// The subset last handed to the state machine, best-ranked first.
        var members: [ResolvedAddress] = []
    }

    private struct State {
        var machine: BalancerStateMachine
        var subset: SubsetState?
        /// Events a transition found, emitted with those of its actions once the lock is left.
        var pendingEvents: [PoolEvent] = []
        var subconnections: [SubconnectionID: Subconnection] = [:]
        var ejection: OutlierEjection?
        var healthCounters: [ResolvedAddress: OutcomeCounter] = [:]
        var activeHealth: ActiveHealth?
        /// Per address, what its GOAWAYs say of the server's streams per connection.
        var streamCaps: [ResolvedAddress: StreamCapEstimate] = [:]

        /// Out of use for the subset: ejected or on probation, or failing its health checks.
        func isOut(_ address: ResolvedAddress) -> Bool {
            if let ejection, ejection.health(of: address) != .healthy { return true }
            return activeHealth?.state(of: address) == .unhealthy
        }

        /// Hands the subset of the latest ranking to the state machine, if it changed (or
        /// `always`, after a resolution).
        mutating func reselectSubset(always: Bool = false) -> [BalancerStateMachine.Action] {
            guard var subset else { return [] }
            let members = Array(subset.rendezvous.members(of: subset.ranking, out: isOut))
            guard always || members != subset.members else { return [] }
            subset.members = members
            self.subset = subset
            return machine.addressesResolved(members, stillResolved: subset.resolved)
        }
    }

    /// Active health checks (from ``LBPool/Configuration/HealthCheck``): the probe request's
    /// head, how often and how long it may take, and the thresholds of ``ActiveHealth``.
    struct HealthProbe: Sendable {
        var head: RequestHead
        var interval: Duration
        var timeout: Duration
        var healthyThreshold: Int
        var unhealthyThreshold: Int
    }

    private let state: Mutex<State>
    private let workStream: AsyncStream<Work>
    private let workContinuation: AsyncStream<Work>.Continuation
    private let settings: ConnectionSettings
    private let backoff: ReconnectBackoff
    private let rotation: Rotation?
    private let logger: Logger
    let pickerState = PickerState()
    let refreshRequests = RefreshRequests()
    let events = EventBroadcaster()
    let metrics: PoolMetrics

    let outlierDetection: OutlierEjection.Settings?
    private let healthProbe: HealthProbe?

    init(
        minConnections: Int, maxConnections: Int, rotation: Rotation?, outlierDetection: OutlierEjection.Settings?,
        healthProbe: HealthProbe?, subset: RendezvousSubset? = nil, settings: ConnectionSettings, backoff: ReconnectBackoff,
        metrics: PoolMetrics, logger: Logger
    ) {
        self.metrics = metrics
        self.outlierDetection = outlierDetection
        self.healthProbe = healthProbe
        self.state = Mutex(
            State(
                machine: BalancerStateMachine(minConnections: minConnections, maxConnections: maxConnections, rotates: rotation != nil),
                subset: subset.map { SubsetState(rendezvous: $0) },
                ejection: outlierDetection.map(OutlierEjection.init(settings:)),
                activeHealth: healthProbe.map {
                    ActiveHealth(healthyThreshold: $0.healthyThreshold, unhealthyThreshold: $0.unhealthyThreshold)
                }
            ))
        self.rotation = rotation
        (self.workStream, self.workContinuation) = AsyncStream.makeStream(of: Work.self)
        self.settings = settings
        self.backoff = backoff
        self.logger = logger
    }

    /// Runs resolution and every subconnection as child tasks; returns after ``shutDown()``
    /// once everything closed, or when the calling task is cancelled (closing everything).
    func run(resolver: any Resolver, host: String, port: Int) async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await update in resolver.updates(host: host, port: port, refreshRequests: self.refreshRequests) {
                    self.resolved(update)
                }
            }
            for await work in workStream {
                switch work {
                case .run(let subconnection):
                    group.addTask {
                        await subconnection.run(settings: self.settings, delegate: self)
                    }
                case .reconnect(let address, let delay):
                    group.addTask {
                        try? await Task.sleep(for: delay)
                        guard !Task.isCancelled else { return }
                        self.apply { $0.reconnectDue(address) }
                    }
                case .healthCheck(let subconnection):
                    if let healthProbe {
                        group.addTask { await self.probeUntilClosed(subconnection, healthProbe) }
                    }
                case .endEjection(let address, let delay):
                    group.addTask {
                        try? await Task.sleep(for: delay)
                        guard !Task.isCancelled else { return }
                        self.ejectionEnded(address)
                    }
                }
            }
            group.cancelAll()
        }
        events.finish()
    }

    /// Refuses new picks, drains every subconnection; ``run(resolver:host:port:)`` returns once
    /// the last one closed.
    func shutDown() {
        pickerState.update { $0.isShuttingDown = true }
        apply { $0.shutDown() }
    }

    /// Reads the state machine and the live subconnections under the lock.
    func withState<Result>(
        _ body: (BalancerStateMachine, [SubconnectionID: Subconnection], OutlierEjection?, ActiveHealth?) -> Result
    ) -> Result {
        state.withLock { body($0.machine, $0.subconnections, $0.ejection, $0.activeHealth) }
    }

    /// The subset, if subsetting is on.
    var subset: SubsetState? {
        state.withLock { $0.subset }
    }

    // MARK: - Passive health

    private func healthCounter(_ address: ResolvedAddress) -> OutcomeCounter? {
        state.withLock { $0.healthCounters[address] }
    }

    /// Records one request outcome at `address`. Lock-free unless the failures reach the
    /// threshold or the address is on probation.
    func recordOutcome(_ address: ResolvedAddress, counter: OutcomeCounter, success: Bool) {
        guard let outlierDetection else { return }
        if success {
            if counter.consecutiveFailures.load(ordering: .relaxed) != 0 {
                counter.consecutiveFailures.store(0, ordering: .relaxed)
            }
            if counter.onProbation.load(ordering: .relaxed) {
                applyHealth(address) { ejection, _ in ejection.succeeded(address) }
            }
        } else {
            let failures = counter.consecutiveFailures.wrappingAdd(1, ordering: .relaxed).newValue
            if failures >= outlierDetection.consecutiveFailures || counter.onProbation.load(ordering: .relaxed) {
                applyHealth(address) { ejection, addresses in ejection.failuresReached(address, addresses: addresses) }
            }
        }
    }

    private func ejectionEnded(_ address: ResolvedAddress) {
        applyHealth(address) { ejection, _ in ejection.ejectionEnded(address) }
    }

    private func applyHealth(_ address: ResolvedAddress, _ transition: (inout OutlierEjection, Int) -> [OutlierEjection.Action]) {
        var snapshot: ReadyEndpoints?
        let actions = state.withLock { state -> [OutlierEjection.Action] in
            guard var ejection = state.ejection else { return [] }
            let actions = transition(&ejection, state.machine.endpoints.count)
            state.ejection = ejection
            let counter = state.healthCounters[address]
            for action in actions {
                switch action {
                case .eject:
                    counter?.onProbation.store(false, ordering: .relaxed)
                    counter?.consecutiveFailures.store(0, ordering: .relaxed)
                case .probe:
                    counter?.consecutiveFailures.store(0, ordering: .relaxed)
                    counter?.onProbation.store(true, ordering: .relaxed)
                case .recovered:
                    counter?.onProbation.store(false, ordering: .relaxed)
                }
            }
            if !actions.isEmpty { snapshot = Self.readyEndpoints(state) }
            return actions
        }
        if let snapshot { pickerState.update { $0.endpoints = snapshot } }
        // The subset follows, once the health change is reported.
        defer { if !actions.isEmpty { update { $0.reselectSubset() } } }
        for action in actions {
            switch action {
            case .eject(let address, let duration):
                logger.warning("ejecting address after consecutive failures", metadata: ["address": "\(address)", "for": "\(duration)"])
                metrics.ejections.increment()
                events.emit(PoolEvent(kind: .ejected(for: duration), address: address, subconnection: nil))
                workContinuation.yield(.endEjection(address, after: duration))
            case .probe(let address):
                logger.info("ejection over: probing address", metadata: ["address": "\(address)"])
                events.emit(PoolEvent(kind: .probing, address: address, subconnection: nil))
            case .recovered(let address):
                logger.info("address recovered", metadata: ["address": "\(address)"])
                events.emit(PoolEvent(kind: .recovered, address: address, subconnection: nil))
            }
        }
    }

    /// Called from the request path when the chosen endpoint's connections are all at their
    /// stream limit.
    func connectionsFull(_ address: ResolvedAddress) {
        apply { $0.connectionsFull(address) }
    }

    func subconnection(_ id: SubconnectionID, address: ResolvedAddress, didReport event: SubconnectionEvent) {
        logger.debug("subconnection \(event)", metadata: ["address": "\(address)", "subconnection": "\(id)"])
        // Reported once the state machine took the event in, so a listener that reads the
        // snapshot on hearing it sees the change.
        let reported: PoolEvent
        switch event {
        case .ready: reported = PoolEvent(kind: .ready, address: address, subconnection: id)
        case .draining(let reason): reported = PoolEvent(kind: .draining(reason), address: address, subconnection: id)
        case .closed(let reason, _): reported = PoolEvent(kind: .closed(reason), address: address, subconnection: id)
        }
        if case .ready = event, healthProbe != nil, let subconnection = state.withLock({ $0.subconnections[id] }) {
            workContinuation.yield(.healthCheck(subconnection))
        }
        switch event {
        case .closed(let reason, wasReady: false):
            pickerState.update { $0.lastConnectionError = reason }
            refreshRequests.request()
            if let counter = healthCounter(address) { recordOutcome(address, counter: counter, success: false) }
        case .draining(.goAway(let code, let lastStreamID, _)):
            logger.info(
                "GOAWAY: draining",
                metadata: [
                    "address": "\(address)", "subconnection": "\(id)",
                    "code": "\(code)", "last_stream_id": "\(lastStreamID)",
                ])
            metrics.goAway(code: code)
            refreshRequests.request()
            learnStreamCap(address, errorCode: code, lastStreamID: lastStreamID)
        case .draining(.streamLimitReached(let streams)):
            logger.debug(
                "per-connection stream cap reached: replacing",
                metadata: [
                    "address": "\(address)", "subconnection": "\(id)", "streams": "\(streams)",
                ])
        case .draining(.protocolViolation(let code, let message)):
            logger.warning(
                "the server broke HTTP/2 or a limit: connection closed",
                metadata: [
                    "address": "\(address)", "subconnection": "\(id)", "code": "\(code)", "error": "\(message)",
                ])
            metrics.protocolViolation(code: code)
            if let counter = healthCounter(address) { recordOutcome(address, counter: counter, success: false) }
        case .draining(.lifetimeExpired):
            logger.debug("rotation: draining after its replacement is ready", metadata: ["address": "\(address)", "subconnection": "\(id)"])
            metrics.rotations.increment()
        default:
            break
        }
        apply(removing: { if case .closed = event { return id } else { return nil } }(), reporting: reported) {
            $0.subconnection(id, address: address, reported: event)
        }
        if case .closed = event { applyActiveHealth(address) { $0.closed(id, at: address) } }
    }

    private func learnStreamCap(_ address: ResolvedAddress, errorCode: HTTP2Code, lastStreamID: Int) {
        let (before, after) = state.withLock { state in
            var estimate = state.streamCaps[address] ?? StreamCapEstimate()
            let before = estimate.cap
            estimate.goAwayReceived(errorCode: errorCode, lastStreamID: lastStreamID)
            state.streamCaps[address] = estimate
            return (before, estimate.cap)
        }
        if let after, after != before {
            logger.info("learned the server's streams per connection", metadata: ["address": "\(address)", "streams": "\(after)"])
        }
    }

    // MARK: - Active health checks

    /// Probes `subconnection` every interval until it starts to go away (``HealthChecker``).
    private func probeUntilClosed(_ subconnection: Subconnection, _ probe: HealthProbe) async {
        let checker = HealthChecker(interval: probe.interval, timeout: probe.timeout, clock: ContinuousClock())
        await checker.run(ProbedSubconnection(subconnection: subconnection, head: probe.head, balancer: self)) { healthy in
            applyActiveHealth(subconnection.address) { $0.probed(subconnection.id, at: subconnection.address, healthy: healthy) }
        }
    }

    private func applyActiveHealth(_ address: ResolvedAddress, _ transition: (inout ActiveHealth) -> EndpointHealthState?) {
        var snapshot: ReadyEndpoints?
        let change = state.withLock { state -> EndpointHealthState? in
            guard var health = state.activeHealth else { return nil }
            let change = transition(&health)
            state.activeHealth = health
            if change != nil { snapshot = Self.readyEndpoints(state) }
            return change
        }
        guard let change else { return }
        if let snapshot { pickerState.update { $0.endpoints = snapshot } }
        logger.info("health check state changed", metadata: ["address": "\(address)", "state": "\(change.rawValue)"])
        events.emit(PoolEvent(kind: .health(change), address: address, subconnection: nil))
        // The subset follows, once the health change is reported.
        update { $0.reselectSubset() }
    }

    private func resolved(_ update: ResolverUpdate) {
        metrics.dnsRefreshes.increment()
        metrics.addresses.record(update.addresses.count)
        if update.error != nil { metrics.dnsFailures.increment() }
        if let error = update.error {
            logger.warning("resolution: \(error)", metadata: ["addresses": "\(update.addresses.count)"])
        } else {
            logger.debug("resolved", metadata: ["addresses": "\(update.addresses)"])
        }
        pickerState.update { $0.resolution = update }
        self.update { state in
            guard var subset = state.subset else { return state.machine.addressesResolved(update.addresses) }
            // With a subset, address events are of DNS; joining and leaving the subset are
            // reported apart.
            let resolved = Set(update.addresses)
            for address in update.addresses where !subset.resolved.contains(address) {
                state.pendingEvents.append(PoolEvent(kind: .addressAdded, address: address, subconnection: nil))
            }
            for address in subset.ranking where !resolved.contains(address) {
                state.pendingEvents.append(PoolEvent(kind: .addressRemoved, address: address, subconnection: nil))
            }
            subset.ranking = subset.rendezvous.ranked(update.addresses)
            subset.resolved = resolved
            state.subset = subset
            return state.reselectSubset(always: true)
        }
    }

    private func apply(
        removing closed: SubconnectionID? = nil,
        reporting reported: PoolEvent? = nil,
        _ transition: (inout BalancerStateMachine) -> [BalancerStateMachine.Action]
    ) {
        update(removing: closed, reporting: reported) { transition(&$0.machine) }
    }

    /// Runs `transition` under the lock and performs the state machine's actions it returns.
    private func update(
        removing closed: SubconnectionID? = nil,
        reporting reported: PoolEvent? = nil,
        _ transition: (inout State) -> [BalancerStateMachine.Action]
    ) {
        var drains: [(Subconnection, ConnectionCloseReason)] = []
        var work: [Work] = []
        var rotations: [(Subconnection, Duration)] = []
        var emitted: [PoolEvent] = []
        var snapshot: ReadyEndpoints?
        var finished = false
        var counts: [ResolvedAddress: PoolMetrics.ConnectionCounts] = [:]
        var members: [ResolvedAddress: Int]?
        state.withLock { state in
            if let closed { state.subconnections[closed] = nil }
            let actions = transition(&state)
            emitted = state.pendingEvents
            state.pendingEvents = []
            for action in actions {
                switch action {
                case .dial(let address, let id):
                    let subconnection = Subconnection(
                        id: id, address: address, health: state.healthCounters[address], streamCap: state.streamCaps[address]?.cap)
                    state.subconnections[id] = subconnection
                    work.append(.run(subconnection))
                    emitted.append(PoolEvent(kind: .connecting, address: address, subconnection: id))
                case .drain(let id, let reason):
                    if let subconnection = state.subconnections[id] { drains.append((subconnection, reason)) }
                case .scheduleReconnect(let address, let attempt):
                    work.append(.reconnect(address, after: backoff.delay(attempt: attempt, random: .random(in: -1...1))))
                case .scheduleRotation(_, let id):
                    if let rotation, let subconnection = state.subconnections[id] {
                        rotations.append((subconnection, rotation.jittered(random: .random(in: -1...1))))
                    }
                case .addressAdded(let address):
                    if state.ejection != nil { state.healthCounters[address] = OutcomeCounter() }
                    let kind: PoolEvent.Kind =
                        state.subset.map { subset in
                            .joinedSubset(rank: (subset.ranking.firstIndex(of: address) ?? subset.ranking.count) + 1)
                        } ?? .addressAdded
                    emitted.append(PoolEvent(kind: kind, address: address, subconnection: nil))
                case .addressRemoved(let address, _):
                    state.healthCounters[address] = nil
                    state.streamCaps[address] = nil
                    state.activeHealth?.removed(address)
                    state.ejection?.removed(address)
                    let kind: PoolEvent.Kind = state.subset == nil ? .addressRemoved : .leftSubset
                    emitted.append(PoolEvent(kind: kind, address: address, subconnection: nil))
                case .publish:
                    snapshot = Self.readyEndpoints(state)
                case .finished:
                    finished = true
                }
            }
            for (address, endpoint) in state.machine.endpoints {
                let states = endpoint.subconnections.values
                counts[address] = (states.count { $0 == .connecting }, states.count { $0.isServing }, states.count { $0 == .draining })
            }
            if let subset = state.subset,
                actions.contains(where: { if case .addressAdded = $0 { true } else if case .addressRemoved = $0 { true } else { false } })
            {
                members = Dictionary(
                    uniqueKeysWithValues: subset.members.map { address in
                        (address, (subset.ranking.firstIndex(of: address) ?? subset.ranking.count) + 1)
                    })
            }
        }
        metrics.connections(counts)
        if let members { metrics.subsetMembers(members) }
        if let snapshot { pickerState.update { $0.endpoints = snapshot } }
        if let reported { events.emit(reported) }
        for event in emitted { events.emit(event) }
        for (subconnection, reason) in drains { subconnection.drain(reason) }
        // A rotation timer lives on the connection's event loop and dies with the connection:
        // a connection closed early (GOAWAY, failure) leaves nothing waiting for its lifetime.
        for (subconnection, lifetime) in rotations {
            let id = subconnection.id, address = subconnection.address
            subconnection.whileOpen(after: lifetime) { self.apply { $0.rotationDue(id, address: address) } }
        }
        for item in work { workContinuation.yield(item) }
        if finished { workContinuation.finish() }
    }

    private static func readyEndpoints(_ state: State) -> ReadyEndpoints {
        var endpoints: [EndpointSnapshot] = []
        endpoints.reserveCapacity(state.machine.endpoints.count)
        for (address, endpoint) in state.machine.endpoints
        where state.ejection?.health(of: address) != .ejected && state.activeHealth?.state(of: address) != .unhealthy {
            let ready = endpoint.subconnections
                .filter { $0.value.isServing }
                .keys.sorted()
                .compactMap { state.subconnections[$0] }
            if !ready.isEmpty { endpoints.append(EndpointSnapshot(address: address, subconnections: ready)) }
        }
        endpoints.sort { ($0.address.ip, $0.address.port) < ($1.address.ip, $1.address.port) }
        return ReadyEndpoints(endpoints)
    }
}
