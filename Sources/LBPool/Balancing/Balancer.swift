import Logging
import NIOCore
import Synchronization

/// Owns the endpoints of one pool: the shell around ``BalancerStateMachine``. It feeds the
/// machine the resolver's updates, the subconnections' events, request outcomes and timer
/// firings, one lock section each, and performs the actions it returns once the lock is left:
/// subconnections through a ``SubconnectionConnector``, timers through ``BalancerTimers``,
/// the picker snapshot, events, metrics and logs.
final class Balancer: SubconnectionDelegate, Sendable {
    private enum Work: Sendable {
        case healthCheck(Subconnection)
        case run(Subconnection)
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

    /// Active health checks (from ``LBPool/Configuration/HealthCheck``): the probe request's
    /// head, how often and how long it may take. The thresholds are the state machine's.
    struct HealthProbe: Sendable {
        var head: RequestHead
        var interval: Duration
        var timeout: Duration
    }

    private struct RunningTimer {
        var generation: UInt64
        var timer: any CancellableTimer
    }

    private struct State {
        var machine: BalancerStateMachine
        var subconnections: [SubconnectionID: Subconnection] = [:]
        /// Per address, its passive-health counter (outlier detection on), shared with its
        /// subconnections so that the request path counts without this lock.
        var counters: [ResolvedAddress: OutcomeCounter] = [:]
        var timers: [BalancerStateMachine.Timer: RunningTimer] = [:]
        var timerGenerations: UInt64 = 0
    }

    /// What one transition asks of the world, gathered under the lock, done after it.
    private struct Effects {
        var snapshot: ReadyEndpoints?
        var counts: [ResolvedAddress: PoolMetrics.ConnectionCounts]?
        var members: [ResolvedAddress: Int]?
        var events: [PoolEvent] = []
        var learned: [(ResolvedAddress, Int)] = []
        var drains: [(Subconnection, ConnectionCloseReason)] = []
        var cancelled: [any CancellableTimer] = []
        var work: [Work] = []
        var failures: [(ResolvedAddress, OutcomeCounter)] = []
        var forgotten: [ResolvedAddress] = []
        var refresh = false
        var finished = false
    }

    private let state: Mutex<State>
    private let workStream: AsyncStream<Work>
    private let workContinuation: AsyncStream<Work>.Continuation
    private let connector: any SubconnectionConnector
    private let timers: any BalancerTimers
    private let logger: Logger
    let pickerState = PickerState()
    let refreshRequests = RefreshRequests()
    let events = EventBroadcaster()
    let metrics: PoolMetrics

    let outlierDetection: OutlierEjection.Settings?
    private let healthProbe: HealthProbe?
    /// The pool's event loops, which connections are placed on; empty: the group's next.
    private let eventLoops: [any EventLoop]
    /// Each of ``eventLoops`` by identity, for the pick path.
    let eventLoopIndex: [ObjectIdentifier: Int]
    /// One more connection for full ones, asked for by a request on none of the pool's loops,
    /// goes on the loop with the fewest of the address's connections rather than the home loop.
    /// Over HTTP/1.1, where nothing is batched across requests, that spreads the work over the
    /// loops; over HTTP/2 the home loop's batching is worth more.
    let spreadsConnections: Bool

    /// - Parameters:
    ///   - eventLoops: The loops to place connections on, the home loop first, so that a
    ///     request on one of them finds a connection there (``pick(with:until:avoiding:)``).
    ///   - seed: Seeds the machine's jitter (reconnect delays, connection lifetimes).
    init(
        settings: BalancerStateMachine.Settings, healthProbe: HealthProbe?, connector: any SubconnectionConnector,
        timers: any BalancerTimers, eventLoops: [any EventLoop] = [], spreadsConnections: Bool = false,
        seed: UInt64 = .random(in: .min ... .max), metrics: PoolMetrics, logger: Logger
    ) {
        self.spreadsConnections = spreadsConnections
        var settings = settings
        settings.eventLoops = max(eventLoops.count, 1)
        self.eventLoops = eventLoops
        self.eventLoopIndex = Dictionary(
            eventLoops.enumerated().map { (ObjectIdentifier($0.element), $0.offset) }, uniquingKeysWith: { first, _ in first })
        self.metrics = metrics
        self.outlierDetection = settings.outlierDetection
        self.healthProbe = settings.healthThresholds == nil ? nil : healthProbe
        self.state = Mutex(State(machine: BalancerStateMachine(settings: settings, seed: seed)))
        (self.workStream, self.workContinuation) = AsyncStream.makeStream(of: Work.self)
        self.connector = connector
        self.timers = timers
        self.logger = logger
    }

    /// Runs resolution and every subconnection as child tasks; returns after ``shutDown()``
    /// once everything closed, or when the calling task is cancelled (closing everything).
    /// Every timer still running is cancelled on the way out.
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
                    group.addTask { await self.connector.run(subconnection, delegate: self) }
                case .healthCheck(let subconnection):
                    if let healthProbe {
                        group.addTask { await self.probeUntilClosed(subconnection, healthProbe) }
                    }
                }
            }
            group.cancelAll()
        }
        let running = state.withLock { state in
            defer { state.timers = [:] }
            return state.timers.values.map(\.timer)
        }
        for running in running { running.cancel() }
        events.finish()
    }

    /// Refuses new picks, drains every subconnection; ``run(resolver:host:port:)`` returns once
    /// the last one closed.
    func shutDown() {
        pickerState.update { $0.isShuttingDown = true }
        update { $0.shutDown() }
    }

    /// Reads the state machine and the live subconnections under the lock.
    func withState<Result>(_ body: (BalancerStateMachine, [SubconnectionID: Subconnection]) -> Result) -> Result {
        state.withLock { body($0.machine, $0.subconnections) }
    }

    /// The subset, if subsetting is on.
    var subset: BalancerStateMachine.Subset? {
        state.withLock { $0.machine.subset }
    }

    // MARK: - Events in

    /// Records one request outcome at `address`. Lock-free unless the failures reach the
    /// threshold or the address is on probation.
    func recordOutcome(_ address: ResolvedAddress, counter: OutcomeCounter, success: Bool) {
        guard let outlierDetection else { return }
        if success {
            if counter.consecutiveFailures.load(ordering: .relaxed) != 0 {
                counter.consecutiveFailures.store(0, ordering: .relaxed)
            }
            if counter.onProbation.load(ordering: .relaxed) {
                update { $0.probeSucceeded(address) }
            }
        } else {
            let failures = counter.consecutiveFailures.wrappingAdd(1, ordering: .relaxed).newValue
            if failures >= outlierDetection.consecutiveFailures || counter.onProbation.load(ordering: .relaxed) {
                update { $0.failuresReached(address) }
            }
        }
    }

    /// Called from the request path when the chosen endpoint's connections are all at their
    /// stream limit; the request runs on event loop `loop` (`nil` if on none of the pool's).
    func connectionsFull(_ address: ResolvedAddress, onLoop loop: Int? = 0) {
        update { $0.connectionsFull(address, onLoop: loop) }
    }

    /// Called from the request path when a request on event loop `loop` picked `endpoint`,
    /// which has no connection on that loop. Once per loop and picker snapshot.
    func connectionWanted(_ endpoint: EndpointSnapshot, onLoop loop: Int) {
        guard loop < 64 else { return }
        let bit: UInt64 = 1 << UInt64(loop)
        guard endpoint.loopsAsked.bitwiseOr(bit, ordering: .relaxed).oldValue & bit == 0 else { return }
        update { $0.connectionWanted(endpoint.address, onLoop: loop) }
    }

    func subconnection(_ id: SubconnectionID, address: ResolvedAddress, didReport event: SubconnectionEvent) {
        logger.debug("subconnection \(event)", metadata: ["address": "\(address)", "subconnection": "\(id)"])
        observe(event, of: id, at: address)
        if case .closed(let reason, wasReady: false) = event {
            pickerState.update { $0.lastConnectionError = reason }
        }
        switch event {
        case .ready: state.withLock { $0.subconnections[id] }?.shared.opened()
        case .closed: state.withLock { $0.subconnections[id] }?.shared.closed()
        case .draining: break
        }
        update(removing: { if case .closed = event { return id } else { return nil } }()) {
            $0.subconnection(id, address: address, reported: event)
        }
    }

    private func resolved(_ update: ResolverUpdate) {
        metrics.dnsRefreshes.increment()
        metrics.addresses.record(update.addresses.count)
        if let error = update.error {
            metrics.dnsFailures.increment()
            logger.warning("resolution: \(error)", metadata: ["addresses": "\(update.addresses.count)"])
        } else {
            logger.debug("resolved", metadata: ["addresses": "\(update.addresses)"])
        }
        pickerState.update { $0.resolution = update }
        self.update { $0.resolved(update.addresses) }
    }

    private func timerFired(_ timer: BalancerStateMachine.Timer, generation: UInt64) {
        update(timer: (timer, generation)) { $0.timerFired(timer) }
    }

    // MARK: - Active health checks

    /// Probes `subconnection` every interval until it starts to go away (``HealthChecker``).
    private func probeUntilClosed(_ subconnection: Subconnection, _ probe: HealthProbe) async {
        let checker = HealthChecker(interval: probe.interval, timeout: probe.timeout, clock: ContinuousClock())
        await checker.run(ProbedSubconnection(subconnection: subconnection, head: probe.head, balancer: self)) { healthy in
            update { $0.probed(subconnection.id, at: subconnection.address, healthy: healthy) }
        }
    }

    // MARK: - Actions out

    /// Runs `transition` under the lock, then does what its actions ask. A timer firing names
    /// its generation: one cancelled or replaced meanwhile is not passed on.
    private func update(
        removing closed: SubconnectionID? = nil,
        timer fired: (BalancerStateMachine.Timer, generation: UInt64)? = nil,
        _ transition: (inout BalancerStateMachine) -> [BalancerStateMachine.Action]
    ) {
        var effects = Effects()
        state.withLock { state in
            if let closed { state.subconnections[closed] = nil }
            if let (timer, generation) = fired {
                guard state.timers[timer]?.generation == generation else { return }
                state.timers[timer] = nil
            }
            let actions = transition(&state.machine)
            guard !actions.isEmpty else { return }
            var publish = false
            for action in actions {
                switch action {
                case .dial(let address, let id, let loop, let streamCap):
                    var counter = state.counters[address]
                    if outlierDetection != nil, counter == nil {
                        counter = OutcomeCounter()
                        state.counters[address] = counter
                    }
                    let subconnection = Subconnection(
                        id: id, address: address, health: counter, streamCap: streamCap,
                        eventLoop: eventLoops.indices.contains(loop) ? eventLoops[loop] : nil,
                        usage: metrics.connectionUsage(for: address))
                    state.subconnections[id] = subconnection
                    effects.work.append(.run(subconnection))
                case .drain(let id, let reason):
                    if let subconnection = state.subconnections[id] { effects.drains.append((subconnection, reason)) }
                case .startTimer(let timer, let delay):
                    // Scheduled under the lock so that the handle is stored with the decision;
                    // `schedule` never fires inline, and a firing waits for this lock.
                    if let replaced = state.timers[timer] { effects.cancelled.append(replaced.timer) }
                    state.timerGenerations += 1
                    let generation = state.timerGenerations
                    let handle = timers.schedule(after: delay) { self.timerFired(timer, generation: generation) }
                    state.timers[timer] = RunningTimer(generation: generation, timer: handle)
                case .cancelTimer(let timer):
                    if let running = state.timers.removeValue(forKey: timer) { effects.cancelled.append(running.timer) }
                case .checkHealth(let id):
                    if healthProbe != nil, let subconnection = state.subconnections[id] {
                        effects.work.append(.healthCheck(subconnection))
                    }
                case .setProbation(let address, let onProbation):
                    if let counter = state.counters[address] {
                        counter.consecutiveFailures.store(0, ordering: .relaxed)
                        counter.onProbation.store(onProbation, ordering: .relaxed)
                    }
                case .countFailure(let address):
                    if let counter = state.counters[address] { effects.failures.append((address, counter)) }
                case .forget(let address):
                    state.counters[address] = nil
                    effects.forgotten.append(address)
                case .refreshResolution:
                    effects.refresh = true
                case .report(let kind, let address, let id):
                    effects.events.append(PoolEvent(kind: kind, address: address, subconnection: id))
                case .learnedStreamCap(let address, let streams):
                    effects.learned.append((address, streams))
                case .subsetMembers(let members):
                    effects.members = members
                case .publish:
                    publish = true
                case .finished:
                    effects.finished = true
                }
            }
            if publish { effects.snapshot = Self.readyEndpoints(state) }
            effects.counts = state.machine.connectionCounts()
        }
        perform(effects)
    }

    private func perform(_ effects: Effects) {
        if let counts = effects.counts { metrics.connections(counts) }
        if let members = effects.members { metrics.subsetMembers(members) }
        // Published before the events, so that a listener that reads the snapshot on hearing
        // one sees the change.
        if let snapshot = effects.snapshot { pickerState.update { $0.endpoints = snapshot } }
        for event in effects.events {
            log(event)
            events.emit(event)
        }
        for (address, streams) in effects.learned {
            logger.info("learned the server's streams per connection", metadata: ["address": "\(address)", "streams": "\(streams)"])
        }
        if effects.refresh { refreshRequests.request() }
        for address in effects.forgotten { metrics.forgetConnectionUsage(of: address) }
        for cancelled in effects.cancelled { cancelled.cancel() }
        for (subconnection, reason) in effects.drains { connector.drain(subconnection, reason) }
        for item in effects.work { workContinuation.yield(item) }
        if effects.finished { workContinuation.finish() }
        for (address, counter) in effects.failures { recordOutcome(address, counter: counter, success: false) }
    }

    /// Logs and metrics of a subconnection's event that decide nothing.
    private func observe(_ event: SubconnectionEvent, of id: SubconnectionID, at address: ResolvedAddress) {
        guard case .draining(let reason) = event else { return }
        switch reason {
        case .goAway(let code, let lastStreamID, _):
            logger.info(
                "GOAWAY: draining",
                metadata: ["address": "\(address)", "subconnection": "\(id)", "code": "\(code)", "last_stream_id": "\(lastStreamID)"])
            metrics.goAway(code: code)
        case .streamLimitReached(let streams):
            logger.debug(
                "per-connection stream cap reached: replacing",
                metadata: ["address": "\(address)", "subconnection": "\(id)", "streams": "\(streams)"])
        case .protocolViolation(let code, let message):
            logger.warning(
                "the server broke HTTP/2 or a limit: connection closed",
                metadata: ["address": "\(address)", "subconnection": "\(id)", "code": "\(code)", "error": "\(message)"])
            metrics.protocolViolation(code: code)
        case .lifetimeExpired:
            logger.debug("rotation: draining after its replacement is ready", metadata: ["address": "\(address)", "subconnection": "\(id)"])
            metrics.rotations.increment()
        default:
            break
        }
    }

    private func log(_ event: PoolEvent) {
        let address: Logger.Metadata = ["address": "\(event.address)"]
        switch event.kind {
        case .ejected(let duration):
            logger.warning("ejecting address after consecutive failures", metadata: address.merging(["for": "\(duration)"]) { $1 })
            metrics.ejections.increment()
        case .probing:
            logger.info("ejection over: probing address", metadata: address)
        case .recovered:
            logger.info("address recovered", metadata: address)
        case .health(let state):
            logger.info("health check state changed", metadata: address.merging(["state": "\(state.rawValue)"]) { $1 })
        default:
            break
        }
    }

    private static func readyEndpoints(_ state: State) -> ReadyEndpoints {
        ReadyEndpoints(
            state.machine.serving().compactMap { address, ids in
                let subconnections = ids.compactMap { state.subconnections[$0] }
                return subconnections.isEmpty ? nil : EndpointSnapshot(address: address, subconnections: subconnections)
            })
    }
}
