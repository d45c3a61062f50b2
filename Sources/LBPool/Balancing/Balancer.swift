import Logging
import Synchronization

/// Owns the endpoints of one pool: applies resolver updates, dials and drains subconnections,
/// and publishes the picker snapshot. The decisions are the ``BalancerStateMachine``'s; this
/// class performs its actions, outside the lock.
final class Balancer: SubconnectionDelegate, Sendable {
    private enum Work: Sendable {
        case run(Subconnection)
        case reconnect(ResolvedAddress, after: Duration)
        case rotate(ResolvedAddress, SubconnectionID, after: Duration)
    }

    /// Maximum connection lifetime and its relative jitter.
    struct Rotation: Sendable {
        var lifetime: Duration
        var jitter: Double

        /// The lifetime of one connection; `random` is in `-1...1`.
        func jittered(random: Double) -> Duration {
            lifetime * (1 + jitter * max(-1, min(1, random)))
        }
    }

    private struct State {
        var machine: BalancerStateMachine
        var subconnections: [SubconnectionID: Subconnection] = [:]
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

    init(minConnections: Int, maxConnections: Int, rotation: Rotation?, settings: ConnectionSettings, backoff: ReconnectBackoff,
         metrics: PoolMetrics, logger: Logger) {
        self.metrics = metrics
        self.state = Mutex(State(machine: BalancerStateMachine(
            minConnections: minConnections, maxConnections: maxConnections, rotates: rotation != nil)))
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
                case .rotate(let address, let id, let delay):
                    group.addTask {
                        try? await Task.sleep(for: delay)
                        guard !Task.isCancelled else { return }
                        self.apply { $0.rotationDue(id, address: address) }
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
    func withState<Result>(_ body: (BalancerStateMachine, [SubconnectionID: Subconnection]) -> Result) -> Result {
        state.withLock { body($0.machine, $0.subconnections) }
    }

    /// Called from the request path when the chosen endpoint's connections are all at their
    /// stream limit.
    func connectionsFull(_ address: ResolvedAddress) {
        apply { $0.connectionsFull(address) }
    }

    func subconnection(_ id: SubconnectionID, address: ResolvedAddress, didReport event: SubconnectionEvent) {
        logger.debug("subconnection \(event)", metadata: ["address": "\(address)", "subconnection": "\(id)"])
        switch event {
        case .ready: events.emit(PoolEvent(kind: .ready, address: address, subconnection: id))
        case .draining(let reason): events.emit(PoolEvent(kind: .draining(reason), address: address, subconnection: id))
        case .closed(let reason, _): events.emit(PoolEvent(kind: .closed(reason), address: address, subconnection: id))
        }
        switch event {
        case .closed(let reason, wasReady: false):
            pickerState.update { $0.lastConnectionError = reason }
            refreshRequests.request()
        case .draining(.goAway(let code, let lastStreamID, _)):
            logger.info("GOAWAY: draining", metadata: [
                "address": "\(address)", "subconnection": "\(id)",
                "code": "\(HTTP2ErrorCodeName(code))", "last_stream_id": "\(lastStreamID)",
            ])
            metrics.goAway(code: code)
            refreshRequests.request()
        case .draining(.lifetimeExpired):
            logger.debug("rotation: draining after its replacement is ready", metadata: ["address": "\(address)", "subconnection": "\(id)"])
            metrics.rotations.increment()
        default:
            break
        }
        apply(removing: { if case .closed = event { return id } else { return nil } }()) {
            $0.subconnection(id, address: address, reported: event)
        }
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
        apply { $0.addressesResolved(update.addresses) }
    }

    private func apply(removing closed: SubconnectionID? = nil, _ transition: (inout BalancerStateMachine) -> [BalancerStateMachine.Action]) {
        var drains: [(Subconnection, ConnectionCloseReason)] = []
        var work: [Work] = []
        var emitted: [PoolEvent] = []
        var snapshot: ReadyEndpoints?
        var finished = false
        var counts: [ResolvedAddress: PoolMetrics.ConnectionCounts] = [:]
        state.withLock { state in
            if let closed { state.subconnections[closed] = nil }
            for action in transition(&state.machine) {
                switch action {
                case .dial(let address, let id):
                    let subconnection = Subconnection(id: id, address: address)
                    state.subconnections[id] = subconnection
                    work.append(.run(subconnection))
                    emitted.append(PoolEvent(kind: .connecting, address: address, subconnection: id))
                case .drain(let id, let reason):
                    if let subconnection = state.subconnections[id] { drains.append((subconnection, reason)) }
                case .scheduleReconnect(let address, let attempt):
                    work.append(.reconnect(address, after: backoff.delay(attempt: attempt, random: .random(in: -1...1))))
                case .scheduleRotation(let address, let id):
                    if let rotation {
                        work.append(.rotate(address, id, after: rotation.jittered(random: .random(in: -1...1))))
                    }
                case .addressAdded(let address):
                    emitted.append(PoolEvent(kind: .addressAdded, address: address, subconnection: nil))
                case .addressRemoved(let address):
                    emitted.append(PoolEvent(kind: .addressRemoved, address: address, subconnection: nil))
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
        }
        metrics.connections(counts)
        for event in emitted { events.emit(event) }
        for (subconnection, reason) in drains { subconnection.drain(reason) }
        for item in work { workContinuation.yield(item) }
        if let snapshot { pickerState.update { $0.endpoints = snapshot } }
        if finished { workContinuation.finish() }
    }

    private static func readyEndpoints(_ state: State) -> ReadyEndpoints {
        var endpoints: [EndpointSnapshot] = []
        endpoints.reserveCapacity(state.machine.endpoints.count)
        for (address, endpoint) in state.machine.endpoints {
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
