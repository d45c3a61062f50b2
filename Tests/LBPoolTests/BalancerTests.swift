import Logging
import CoreMetrics
import Synchronization
import Testing
@testable import LBPool

/// The balancer shell without sockets: subconnections come from a scripted connector, timers
/// from a manual clock, addresses from a scripted resolver. The test plays the subconnections'
/// part by reporting their events.
@Suite(.timeLimit(.minutes(1))) struct BalancerTests {
    let a = ResolvedAddress(ip: "10.0.0.1", port: 80)
    let b = ResolvedAddress(ip: "10.0.0.2", port: 80)

    /// Records what the balancer asks of its subconnections.
    final class ScriptedConnector: SubconnectionConnector {
        let dialled: AsyncStream<Subconnection>
        private let continuation: AsyncStream<Subconnection>.Continuation
        private let drained = Mutex<[(SubconnectionID, ConnectionCloseReason)]>([])

        init() {
            (dialled, continuation) = AsyncStream.makeStream()
        }

        var drains: [(SubconnectionID, ConnectionCloseReason)] { drained.withLock { $0 } }

        func run(_ subconnection: Subconnection, delegate: any SubconnectionDelegate) async {
            continuation.yield(subconnection)
        }

        func drain(_ subconnection: Subconnection, _ reason: ConnectionCloseReason) {
            drained.withLock { $0.append((subconnection.id, reason)) }
        }
    }

    /// Timers on a clock that moves only when the test says.
    final class ManualTimers: BalancerTimers {
        final class Handle: CancellableTimer {
            let deadline: Duration
            let fire: @Sendable () -> Void
            let isCancelled = Atomic(false)

            init(deadline: Duration, fire: @escaping @Sendable () -> Void) {
                self.deadline = deadline
                self.fire = fire
            }

            func cancel() { isCancelled.store(true, ordering: .relaxed) }
        }

        private let state = Mutex<(now: Duration, scheduled: [Handle])>((.zero, []))

        func schedule(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> any CancellableTimer {
            state.withLock { state in
                let handle = Handle(deadline: state.now + delay, fire: fire)
                state.scheduled.append(handle)
                return handle
            }
        }

        /// Timers neither fired nor cancelled.
        var pending: [Duration] {
            state.withLock { $0.scheduled.filter { !$0.isCancelled.load(ordering: .relaxed) }.map(\.deadline) }
        }

        /// Moves the clock and fires what fell due, earliest first.
        func advance(by duration: Duration) {
            let due = state.withLock { state -> [Handle] in
                state.now += duration
                let now = state.now
                let due = state.scheduled.filter { $0.deadline <= now }.sorted { $0.deadline < $1.deadline }
                state.scheduled.removeAll { $0.deadline <= now }
                return due
            }
            for handle in due where !handle.isCancelled.load(ordering: .relaxed) { handle.fire() }
        }
    }

    /// Hands the balancer whatever addresses the test publishes.
    final class ScriptedResolver: Resolver {
        let stream: AsyncStream<ResolverUpdate>
        private let continuation: AsyncStream<ResolverUpdate>.Continuation

        init() {
            (stream, continuation) = AsyncStream.makeStream()
        }

        func publish(_ addresses: [ResolvedAddress]) { continuation.yield(ResolverUpdate(addresses: addresses)) }

        func updates(host: String, port: Int, refreshRequests: RefreshRequests) -> AsyncStream<ResolverUpdate> { stream }
    }

    struct Harness {
        let connector = ScriptedConnector()
        let timers = ManualTimers()
        let resolver = ScriptedResolver()
        let balancer: Balancer

        init(_ settings: BalancerStateMachine.Settings) {
            balancer = Balancer(
                settings: settings, healthProbe: nil, connector: connector, timers: timers, seed: 1,
                metrics: PoolMetrics(factory: NOOPMetricsHandler.instance), logger: Logger(label: "test"))
        }

        func start() -> Task<Void, Never> {
            Task { [balancer, resolver] in await balancer.run(resolver: resolver, host: "service", port: 80) }
        }

        func report(_ subconnection: Subconnection, _ event: SubconnectionEvent) {
            balancer.subconnection(subconnection.id, address: subconnection.address, didReport: event)
        }

        var serving: [ResolvedAddress] { balancer.pickerState.current().snapshot.endpoints.map(\.address) }
    }

    /// The next event that `matches`, from a subscription made before the events happened.
    func next(_ events: inout AsyncStream<PoolEvent>.Iterator, _ matches: (PoolEvent.Kind) -> Bool) async -> PoolEvent? {
        while let event = await events.next() {
            if matches(event.kind) { return event }
        }
        return nil
    }

    @Test func resolvedAddressesAreDialledAndTheirReadyConnectionsPublished() async throws {
        let harness = Harness(.init(minConnections: 1))
        var events = harness.balancer.events.subscribe().makeAsyncIterator()
        let run = harness.start()
        var dials = harness.connector.dialled.makeAsyncIterator()
        harness.resolver.publish([b, a])
        let first = try #require(await dials.next()), second = try #require(await dials.next())
        #expect(Set([first.address, second.address]) == [a, b])
        let connecting = await next(&events) { $0 == .connecting }
        #expect(connecting?.subconnection == first.id || connecting?.subconnection == second.id)
        #expect(harness.serving.isEmpty, "connecting is not serving")

        harness.report(first, .ready)
        #expect(harness.serving == [first.address])
        harness.report(second, .ready)
        #expect(harness.serving == [a, b], "in address order")
        let published = harness.balancer.pickerState.current().snapshot.endpoints
        #expect(published.storage.flatMap(\.subconnections).allSatisfy { $0 === first || $0 === second })
        #expect(await next(&events) { $0 == .ready } != nil)
        run.cancel()
        await run.value
    }

    @Test func aFailedDialIsMadeAgainWhenItsBackoffTimerFires() async throws {
        let harness = Harness(.init(minConnections: 1))
        let run = harness.start()
        var dials = harness.connector.dialled.makeAsyncIterator()
        harness.resolver.publish([a])
        let failed = try #require(await dials.next())
        harness.report(failed, .closed(.connectionError("connection refused"), wasReady: false))
        #expect(harness.balancer.pickerState.current().snapshot.lastConnectionError == .connectionError("connection refused"))
        #expect(harness.timers.pending.count == 1, "one backoff timer")
        #expect(harness.balancer.withState { machine, _ in machine.endpoints[a]?.subconnections.isEmpty } == true)

        harness.timers.advance(by: .seconds(2))
        let again = try #require(await dials.next())
        #expect(again.address == a && again.id != failed.id)
        #expect(harness.timers.pending.isEmpty)
        run.cancel()
        await run.value
    }

    @Test func aRotationReplacesTheConnectionBeforeDrainingItAndCancelsTheTimerOfAClosedOne() async throws {
        let harness = Harness(.init(minConnections: 1, rotation: .init(lifetime: .seconds(60), jitter: 0)))
        let run = harness.start()
        var dials = harness.connector.dialled.makeAsyncIterator()
        harness.resolver.publish([a])
        let old = try #require(await dials.next())
        harness.report(old, .ready)
        #expect(harness.timers.pending == [.seconds(60)])

        harness.timers.advance(by: .seconds(60))
        let replacement = try #require(await dials.next())
        #expect(harness.connector.drains.isEmpty, "the old connection serves until its replacement is ready")
        #expect(harness.serving == [a])
        harness.report(replacement, .ready)
        #expect(harness.connector.drains.map(\.0) == [old.id])
        #expect(harness.connector.drains.map(\.1) == [.lifetimeExpired])
        #expect(harness.timers.pending == [.seconds(120)], "the replacement's lifetime runs")

        // The replacement closes early (a GOAWAY, say): its rotation timer goes with it.
        harness.report(replacement, .draining(.goAway(errorCode: .noError, lastStreamID: 1, debugData: "")))
        harness.report(replacement, .closed(.goAway(errorCode: .noError, lastStreamID: 1, debugData: ""), wasReady: true))
        #expect(harness.timers.pending.isEmpty)
        run.cancel()
        await run.value
    }

    @Test func requestFailuresEjectAnAddressUntilItsTimerThenTheProbeDecides() async throws {
        let ejection = OutlierEjection.Settings(
            consecutiveFailures: 3, baseEjectionTime: .seconds(30), maxEjectionTime: .seconds(300), minAvailableShare: 0.1)
        let harness = Harness(.init(minConnections: 1, outlierDetection: ejection))
        var events = harness.balancer.events.subscribe().makeAsyncIterator()
        let run = harness.start()
        var dials = harness.connector.dialled.makeAsyncIterator()
        harness.resolver.publish([a, b])
        for _ in 0..<2 { harness.report(try #require(await dials.next()), .ready) }
        let endpoint = try #require(harness.balancer.pickerState.current().snapshot.endpoints.storage.first)
        let counter = try #require(endpoint.subconnections[0].health, "outlier detection gives each connection its address's counter")

        for _ in 0..<2 { harness.balancer.recordOutcome(a, counter: counter, success: false) }
        #expect(harness.serving == [a, b], "two failures are below the threshold")
        harness.balancer.recordOutcome(a, counter: counter, success: false)
        #expect(harness.serving == [b])
        #expect(await next(&events) { if case .ejected = $0 { true } else { false } }?.kind == .ejected(for: .seconds(30)))
        #expect(harness.timers.pending == [.seconds(30)])

        harness.timers.advance(by: .seconds(30))
        #expect(harness.serving == [a, b])
        let onProbation = counter.onProbation.load(ordering: .relaxed)
        #expect(onProbation)
        harness.balancer.recordOutcome(a, counter: counter, success: true)
        #expect(await next(&events) { $0 == .recovered }?.address == a)
        let stillOnProbation = counter.onProbation.load(ordering: .relaxed)
        #expect(!stillOnProbation)
        run.cancel()
        await run.value
    }

    @Test func shutDownDrainsEveryConnectionCancelsTheTimersAndRunReturnsOnceTheLastClosed() async throws {
        let harness = Harness(.init(minConnections: 1, rotation: .init(lifetime: .seconds(60), jitter: 0)))
        let run = harness.start()
        var dials = harness.connector.dialled.makeAsyncIterator()
        harness.resolver.publish([a, b])
        let first = try #require(await dials.next()), second = try #require(await dials.next())
        harness.report(first, .ready)
        harness.report(second, .ready)
        #expect(harness.timers.pending.count == 2)

        harness.balancer.shutDown()
        #expect(harness.balancer.pickerState.current().snapshot.isShuttingDown)
        #expect(Set(harness.connector.drains.map(\.0)) == [first.id, second.id])
        #expect(harness.connector.drains.allSatisfy { $0.1 == .poolShutdown })
        #expect(harness.timers.pending.isEmpty)
        harness.report(first, .closed(.poolShutdown, wasReady: true))
        harness.report(second, .closed(.poolShutdown, wasReady: true))
        // Returns because the last connection closed: the test does not cancel it.
        await run.value
    }

    @Test func cancellingRunCancelsEveryTimerStillRunning() async throws {
        let harness = Harness(.init(minConnections: 1, rotation: .init(lifetime: .seconds(60), jitter: 0)))
        let run = harness.start()
        var dials = harness.connector.dialled.makeAsyncIterator()
        harness.resolver.publish([a])
        harness.report(try #require(await dials.next()), .ready)
        #expect(harness.timers.pending.count == 1)
        run.cancel()
        await run.value
        #expect(harness.timers.pending.isEmpty, "nothing outlives run()")
    }
}
