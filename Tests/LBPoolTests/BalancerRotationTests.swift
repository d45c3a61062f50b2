import Testing
@testable import LBPool

@Suite struct BalancerRotationTests {
    let a = ResolvedAddress(ip: "10.0.0.1", port: 80)

    func dials(_ actions: [AddressReconciliation.Action]) -> [SubconnectionID] {
        actions.compactMap { if case .dial(_, let id, _) = $0 { return id } else { return nil } }
    }

    /// A machine with one ready subconnection, returned with its id.
    func readyMachine(minConnections: Int = 1) -> (AddressReconciliation, [SubconnectionID]) {
        var machine = AddressReconciliation(minConnections: minConnections, rotates: true)
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
