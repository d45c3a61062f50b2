import Testing
@testable import LBPool

@Suite struct BalancerStateMachineTests {
    let a = ResolvedAddress(ip: "10.0.0.1", port: 80)
    let b = ResolvedAddress(ip: "10.0.0.2", port: 80)
    let c = ResolvedAddress(ip: "10.0.0.3", port: 80)

    func dials(_ actions: [BalancerStateMachine.Action]) -> [(ResolvedAddress, SubconnectionID)] {
        actions.compactMap { if case .dial(let address, let id) = $0 { return (address, id) } else { return nil } }
    }

    @Test func newAddressesAreDialledMinConnectionsTimes() {
        var machine = BalancerStateMachine(minConnections: 2)
        let actions = machine.addressesResolved([a, b])
        #expect(dials(actions).map(\.0) == [a, a, b, b])
        #expect(Set(dials(actions).map(\.1)).count == 4)
    }

    @Test func anAddressLeavingTheSubsetButNotDNSDrainsForThatReason() {
        var machine = BalancerStateMachine(minConnections: 1)
        let ids = dials(machine.addressesResolved([a, b]))
        let actions = machine.addressesResolved([b, c], stillResolved: [a, b, c])
        #expect(actions.contains(.drain(ids[0].1, .leftSubset)))
        #expect(actions.contains(.addressRemoved(a, .leftSubset)))
        #expect(dials(actions).map(\.0) == [c])
        // Gone from DNS as well: the DNS reason.
        let gone = machine.addressesResolved([c], stillResolved: [c])
        #expect(gone.contains(.drain(ids[1].1, .addressRemoved)) && gone.contains(.addressRemoved(b, .addressRemoved)))
    }

    @Test func unchangedSetCausesNoChurn() {
        var machine = BalancerStateMachine(minConnections: 1)
        _ = machine.addressesResolved([a, b])
        #expect(machine.addressesResolved([b, a]).isEmpty)
        #expect(machine.addressesResolved([a, b, a]).isEmpty)
    }

    @Test func removedAddressDrainsAndAddedAddressDials() {
        var machine = BalancerStateMachine(minConnections: 1)
        let first = dials(machine.addressesResolved([a, b]))
        let idA = first[0].1
        _ = machine.subconnection(idA, address: a, reported: .ready)
        let actions = machine.addressesResolved([b, c])
        #expect(actions.contains(.drain(idA, .addressRemoved)))
        #expect(dials(actions).map(\.0) == [c])
        #expect(actions.last == .publish)
        #expect(machine.endpoints[a] == nil)
        // The retiring subconnection's events no longer touch any endpoint.
        #expect(machine.subconnection(idA, address: a, reported: .draining(.addressRemoved)).isEmpty)
        #expect(machine.subconnection(idA, address: a, reported: .closed(.addressRemoved, wasReady: true)).isEmpty)
        #expect(machine.retiring.isEmpty)
    }

    @Test func readyPublishesAndResetsBackoff() {
        var machine = BalancerStateMachine(minConnections: 1)
        let id = dials(machine.addressesResolved([a]))[0].1
        let closed = machine.subconnection(id, address: a, reported: .closed(.connectionError("refused"), wasReady: false))
        #expect(closed == [.scheduleReconnect(a, attempt: 1)])
        let redial = dials(machine.reconnectDue(a))
        #expect(redial.count == 1)
        let second = machine.subconnection(redial[0].1, address: a, reported: .closed(.connectionError("refused"), wasReady: false))
        #expect(second == [.scheduleReconnect(a, attempt: 2)])
        let third = dials(machine.reconnectDue(a))[0].1
        #expect(machine.subconnection(third, address: a, reported: .ready) == [.publish])
        #expect(machine.endpoints[a]?.failedAttempts == 0)
    }

    @Test func drainingReadySubconnectionIsReplacedAtOnce() {
        var machine = BalancerStateMachine(minConnections: 1)
        let id = dials(machine.addressesResolved([a]))[0].1
        _ = machine.subconnection(id, address: a, reported: .ready)
        let actions = machine.subconnection(id, address: a, reported: .draining(.goAway(errorCode: .noError, lastStreamID: 7, debugData: "")))
        #expect(dials(actions).map(\.0) == [a])
        #expect(actions.last == .publish)
        // Its close afterwards needs no further dial.
        #expect(
            dials(machine.subconnection(id, address: a, reported: .closed(.goAway(errorCode: .noError, lastStreamID: 7, debugData: ""), wasReady: true)))
                .isEmpty)
    }

    @Test func connectFailureWaitsForBackoffInsteadOfRedialling() {
        var machine = BalancerStateMachine(minConnections: 2)
        let ids = dials(machine.addressesResolved([a])).map(\.1)
        let draining = machine.subconnection(ids[0], address: a, reported: .draining(.connectionError("reset")))
        #expect(dials(draining).isEmpty)
        let first = machine.subconnection(ids[0], address: a, reported: .closed(.connectionError("reset"), wasReady: false))
        #expect(first == [.scheduleReconnect(a, attempt: 1)])
        // A second failure while a reconnect is scheduled does not schedule another.
        #expect(machine.subconnection(ids[1], address: a, reported: .closed(.connectionError("reset"), wasReady: false)).isEmpty)
        #expect(dials(machine.reconnectDue(a)).count == 2)
    }

    @Test func fullConnectionsDialOneMoreUpToTheMaximum() {
        var machine = BalancerStateMachine(minConnections: 1, maxConnections: 2)
        let first = dials(machine.addressesResolved([a]))[0].1
        #expect(machine.connectionsFull(a).isEmpty, "one is still connecting")
        _ = machine.subconnection(first, address: a, reported: .ready)
        let extra = dials(machine.connectionsFull(a))
        #expect(extra.count == 1)
        #expect(machine.connectionsFull(a).isEmpty, "the extra one is connecting")
        _ = machine.subconnection(extra[0].1, address: a, reported: .ready)
        #expect(machine.connectionsFull(a).isEmpty, "at the maximum")
        #expect(machine.connectionsFull(b).isEmpty, "unknown address")
    }

    @Test func shutdownDrainsEverythingAndFinishesWhenAllClosed() {
        var machine = BalancerStateMachine(minConnections: 1)
        let ids = dials(machine.addressesResolved([a, b])).map(\.1)
        _ = machine.subconnection(ids[0], address: a, reported: .ready)
        let actions = machine.shutDown()
        #expect(actions.contains(.drain(ids[0], .poolShutdown)))
        #expect(actions.contains(.drain(ids[1], .poolShutdown)))
        #expect(!actions.contains(.finished))
        #expect(machine.addressesResolved([c]).isEmpty)
        _ = machine.subconnection(ids[0], address: a, reported: .draining(.poolShutdown))
        let first = machine.subconnection(ids[0], address: a, reported: .closed(.poolShutdown, wasReady: true))
        #expect(dials(first).isEmpty)
        #expect(!first.contains(.finished))
        let last = machine.subconnection(ids[1], address: b, reported: .closed(.poolShutdown, wasReady: false))
        #expect(last == [.finished])
    }
}

@Suite struct BalancerRotationTests {
    let a = ResolvedAddress(ip: "10.0.0.1", port: 80)

    func dials(_ actions: [BalancerStateMachine.Action]) -> [SubconnectionID] {
        actions.compactMap { if case .dial(_, let id) = $0 { return id } else { return nil } }
    }

    /// A machine with one ready subconnection, returned with its id.
    func readyMachine(minConnections: Int = 1) -> (BalancerStateMachine, [SubconnectionID]) {
        var machine = BalancerStateMachine(minConnections: minConnections, rotates: true)
        let ids = dials(machine.addressesResolved([a]))
        for id in ids {
            let actions = machine.subconnection(id, address: a, reported: .ready)
            #expect(actions.contains(.scheduleRotation(a, id)))
        }
        return (machine, ids)
    }

    @Test func replacementIsReadyBeforeTheOldOneDrains() {
        var (machine, ids) = readyMachine()
        let old = ids[0]
        let due = machine.rotationDue(old, address: a)
        let replacement = dials(due)
        #expect(replacement.count == 1)
        #expect(!due.contains { if case .drain = $0 { return true } else { return false } })
        #expect(machine.endpoints[a]?.subconnections[old] == .rotating, "still serving while the replacement connects")
        let ready = machine.subconnection(replacement[0], address: a, reported: .ready)
        #expect(ready.contains(.drain(old, .lifetimeExpired)))
        #expect(ready.contains(.scheduleRotation(a, replacement[0])))
        #expect(ready.last == .publish)
        // Its draining and closing dial nothing more.
        #expect(dials(machine.subconnection(old, address: a, reported: .draining(.lifetimeExpired))).isEmpty)
        #expect(dials(machine.subconnection(old, address: a, reported: .closed(.lifetimeExpired, wasReady: true))).isEmpty)
        #expect(machine.endpoints[a]?.live == 1)
    }

    @Test func failedReplacementKeepsTheOldOneServingAndRetries() {
        var (machine, ids) = readyMachine()
        let replacement = dials(machine.rotationDue(ids[0], address: a))[0]
        let failed = machine.subconnection(replacement, address: a, reported: .closed(.connectionError("refused"), wasReady: false))
        #expect(failed == [.scheduleReconnect(a, attempt: 1)])
        #expect(machine.endpoints[a]?.subconnections[ids[0]] == .rotating)
        let retry = dials(machine.reconnectDue(a))
        #expect(retry.count == 1)
        #expect(machine.subconnection(retry[0], address: a, reported: .ready).contains(.drain(ids[0], .lifetimeExpired)))
    }

    @Test func goAwayWhileRotatingDoesNotDialTwice() {
        var (machine, ids) = readyMachine()
        let replacement = dials(machine.rotationDue(ids[0], address: a))
        #expect(replacement.count == 1)
        let goAway = machine.subconnection(ids[0], address: a, reported: .draining(.goAway(errorCode: .noError, lastStreamID: 1, debugData: "")))
        #expect(dials(goAway).isEmpty, "the replacement is already connecting")
        #expect(goAway == [.publish])
        // The replacement then has nothing left to drain.
        let ready = machine.subconnection(replacement[0], address: a, reported: .ready)
        #expect(!ready.contains { if case .drain = $0 { return true } else { return false } })
    }

    @Test func rotationOfANonReadySubconnectionIsIgnored() {
        var (machine, ids) = readyMachine()
        _ = machine.subconnection(ids[0], address: a, reported: .draining(.goAway(errorCode: .noError, lastStreamID: 1, debugData: "")))
        #expect(machine.rotationDue(ids[0], address: a).isEmpty)
        #expect(machine.rotationDue(SubconnectionID(999), address: a).isEmpty)
        _ = machine.shutDown()
        #expect(machine.rotationDue(ids[0], address: a).isEmpty)
    }

    @Test func lifetimeJitterStaysWithinBounds() {
        let rotation = Balancer.Rotation(lifetime: .seconds(10), jitter: 0.1)
        #expect(rotation.jittered(random: 0) == .seconds(10))
        #expect(rotation.jittered(random: 1) == .seconds(11))
        #expect(rotation.jittered(random: -1) == .seconds(9))
        #expect(rotation.jittered(random: 7) == .seconds(11))
    }
}

@Suite struct OutlierEjectionTests {
    let a = ResolvedAddress(ip: "10.0.0.1", port: 80)
    let b = ResolvedAddress(ip: "10.0.0.2", port: 80)

    func machine(base: Int = 10, max: Int = 300, share: Double = 0.5) -> OutlierEjection {
        var settings = LBPool.Configuration.OutlierDetection()
        settings.baseEjectionTime = .seconds(base)
        settings.maxEjectionTime = .seconds(max)
        settings.minAvailableShare = share
        return OutlierEjection(settings: .init(settings))
    }

    @Test func ejectionProbeAndRecovery() {
        var ejection = machine()
        #expect(ejection.failuresReached(a, addresses: 4) == [.eject(a, for: .seconds(10))])
        #expect(ejection.health(of: a) == .ejected)
        #expect(ejection.failuresReached(a, addresses: 4).isEmpty, "already ejected")
        #expect(ejection.ejectionEnded(a) == [.probe(a)])
        #expect(ejection.succeeded(a) == [.recovered(a)])
        #expect(ejection.health(of: a) == .healthy)
        #expect(ejection.succeeded(a).isEmpty)
    }

    @Test func repeatOffencesDoubleTheEjectionUpToTheMaximum() {
        var ejection = machine(base: 10, max: 35)
        #expect(ejection.failuresReached(a, addresses: 4) == [.eject(a, for: .seconds(10))])
        _ = ejection.ejectionEnded(a)
        #expect(ejection.failuresReached(a, addresses: 4) == [.eject(a, for: .seconds(20))], "a failed probe re-ejects")
        _ = ejection.ejectionEnded(a)
        #expect(ejection.failuresReached(a, addresses: 4) == [.eject(a, for: .seconds(35))])
    }

    @Test func neverEjectsBelowTheAvailableShare() {
        var ejection = machine(share: 0.5)
        #expect(!ejection.failuresReached(a, addresses: 3).isEmpty, "2 of 3 stay")
        #expect(ejection.failuresReached(b, addresses: 3).isEmpty, "1 of 3 would stay")
        #expect(ejection.health(of: b) == .healthy)
        var single = machine(share: 0.5)
        #expect(single.failuresReached(a, addresses: 1).isEmpty, "the only address is never ejected")
    }

    @Test func removedAddressesAreForgotten() {
        var ejection = machine()
        _ = ejection.failuresReached(a, addresses: 4)
        ejection.removed(a)
        #expect(ejection.health(of: a) == .healthy)
        #expect(ejection.ejectionEnded(a).isEmpty)
    }
}

@Suite struct ActiveHealthTests {
    let a = ResolvedAddress(ip: "10.0.0.1", port: 80)
    let one = SubconnectionID(1)
    let two = SubconnectionID(2)

    @Test func thresholdsDecideEachConnectionAndTheAddressFollows() {
        var health = ActiveHealth(healthyThreshold: 2, unhealthyThreshold: 2)
        #expect(health.state(of: a) == .unknown)
        #expect(health.probed(one, at: a, healthy: true) == nil, "one success is below the threshold")
        #expect(health.probed(one, at: a, healthy: true) == .healthy)
        #expect(health.probed(two, at: a, healthy: false) == nil)
        #expect(health.probed(two, at: a, healthy: false) == .degraded)
        #expect(health.probed(one, at: a, healthy: false) == nil)
        #expect(health.probed(one, at: a, healthy: false) == .unhealthy)
        #expect(health.closed(one, at: a) == nil, "two alone is still unhealthy")
        #expect(health.closed(two, at: a) == .unknown)
    }

    @Test func aSuccessResetsTheFailureCount() {
        var health = ActiveHealth(healthyThreshold: 1, unhealthyThreshold: 2)
        _ = health.probed(one, at: a, healthy: true)
        #expect(health.probed(one, at: a, healthy: false) == nil)
        #expect(health.probed(one, at: a, healthy: true) == nil)
        #expect(health.probed(one, at: a, healthy: false) == nil)
        #expect(health.state(of: a) == .healthy)
    }
}
