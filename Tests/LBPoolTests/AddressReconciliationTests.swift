import Testing
@testable import LBPool

@Suite struct AddressReconciliationTests {
    let a = ResolvedAddress(ip: "10.0.0.1", port: 80)
    let b = ResolvedAddress(ip: "10.0.0.2", port: 80)
    let c = ResolvedAddress(ip: "10.0.0.3", port: 80)

    func dials(_ actions: [AddressReconciliation.Action]) -> [(ResolvedAddress, SubconnectionID)] {
        actions.compactMap { if case .dial(let address, let id, _) = $0 { return (address, id) } else { return nil } }
    }

    @Test func newAddressesAreDialledMinConnectionsTimes() {
        var machine = AddressReconciliation(minConnections: 2)
        let actions = machine.addressesResolved([a, b])
        #expect(dials(actions).map(\.0) == [a, a, b, b])
        #expect(Set(dials(actions).map(\.1)).count == 4)
    }

    @Test func anAddressLeavingTheSubsetButNotDNSDrainsForThatReason() {
        var machine = AddressReconciliation(minConnections: 1)
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
        var machine = AddressReconciliation(minConnections: 1)
        _ = machine.addressesResolved([a, b])
        #expect(machine.addressesResolved([b, a]).isEmpty)
        #expect(machine.addressesResolved([a, b, a]).isEmpty)
    }

    @Test func removedAddressDrainsAndAddedAddressDials() {
        var machine = AddressReconciliation(minConnections: 1)
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
        var machine = AddressReconciliation(minConnections: 1)
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
        var machine = AddressReconciliation(minConnections: 1)
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
        var machine = AddressReconciliation(minConnections: 2)
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
        var machine = AddressReconciliation(minConnections: 1, maxConnections: 2)
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
        var machine = AddressReconciliation(minConnections: 1)
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

    // MARK: - Placement on event loops

    func loops(_ actions: [AddressReconciliation.Action]) -> [Int] {
        actions.compactMap { if case .dial(_, _, let loop) = $0 { return loop } else { return nil } }
    }

    @Test func warmConnectionsAndTheirTopUpsAreDialledOnTheHomeLoop() {
        var machine = AddressReconciliation(minConnections: 2, eventLoops: 4)
        let placed = machine.addressesResolved([a, b])
        #expect(loops(placed) == [0, 0, 0, 0], "one loop carries the pool until requests come from others")
        let id = dials(placed)[0].1
        _ = machine.subconnection(id, address: a, reported: .ready)
        #expect(loops(machine.subconnection(id, address: a, reported: .draining(.keepaliveTimeout))) == [0])
    }

    @Test func oneMoreConnectionForFullOnesIsDialledOnTheLoopOfTheRequestThatFoundThemFull() {
        var machine = AddressReconciliation(minConnections: 1, maxConnections: 3, eventLoops: 2)
        _ = machine.subconnection(dials(machine.addressesResolved([a]))[0].1, address: a, reported: .ready)
        #expect(loops(machine.connectionsFull(a, onLoop: 1)) == [1])
        var other = AddressReconciliation(minConnections: 1, maxConnections: 3, eventLoops: 2)
        _ = other.subconnection(dials(other.addressesResolved([a]))[0].1, address: a, reported: .ready)
        #expect(loops(other.connectionsFull(a, onLoop: 9)) == [0], "no such loop: the home loop")
    }

    @Test func oneMoreConnectionAskedForFromNoLoopGoesToTheLoopWithTheFewest() {
        var machine = AddressReconciliation(minConnections: 1, maxConnections: 5, eventLoops: 3)
        _ = machine.subconnection(dials(machine.addressesResolved([a]))[0].1, address: a, reported: .ready)
        // The warm one is on the home loop (0): loops 1 and 2 take the next, then 0 and 1 again.
        var placed: [Int] = []
        for _ in 0..<4 {
            let actions = machine.connectionsFull(a, onLoop: nil)
            placed += loops(actions)
            #expect(machine.connectionsFull(a, onLoop: nil).isEmpty, "one is connecting")
            if let (_, id) = dials(actions).first { _ = machine.subconnection(id, address: a, reported: .ready) }
        }
        #expect(placed == [1, 2, 0, 1])
        #expect(machine.connectionsFull(a, onLoop: nil).isEmpty, "at the maximum")
    }

    @Test func aConnectionWantedOnALoopIsDialledThereOnceAndOnlyUpToTheMaximum() {
        var machine = AddressReconciliation(minConnections: 1, maxConnections: 2, eventLoops: 3)
        let first = dials(machine.addressesResolved([a]))[0].1
        _ = machine.subconnection(first, address: a, reported: .ready)
        #expect(machine.endpoints[a]?.loops[first] == 0)
        #expect(machine.connectionWanted(a, onLoop: 0).isEmpty, "it has one there")
        let wanted = machine.connectionWanted(a, onLoop: 1)
        #expect(loops(wanted) == [1])
        #expect(machine.connectionWanted(a, onLoop: 1).isEmpty, "one is connecting there")
        #expect(machine.connectionWanted(a, onLoop: 2).isEmpty, "at maxConnections")
        #expect(machine.connectionWanted(a, onLoop: 7).isEmpty, "no such loop")
        #expect(machine.connectionWanted(b, onLoop: 1).isEmpty, "unknown address")
        // The one on loop 1 goes away (GOAWAY): loop 1 may ask again.
        let id = dials(wanted)[0].1
        _ = machine.subconnection(id, address: a, reported: .ready)
        #expect(dials(machine.subconnection(id, address: a, reported: .draining(.keepaliveTimeout))).isEmpty, "above minConnections")
        #expect(loops(machine.connectionWanted(a, onLoop: 1)) == [1])
    }

    @Test func aConnectionWantedWaitsWhileTheAddressBacksOff() {
        var machine = AddressReconciliation(minConnections: 1, maxConnections: 4, eventLoops: 2)
        let first = dials(machine.addressesResolved([a]))[0].1
        _ = machine.subconnection(first, address: a, reported: .closed(.connectionError("refused"), wasReady: false))
        #expect(machine.connectionWanted(a, onLoop: 1).isEmpty)
    }

    @Test func aRotationsReplacementIsDialledOnTheLoopOfTheConnectionItReplacesAndDrainsThatOne() {
        var machine = AddressReconciliation(minConnections: 1, maxConnections: 2, rotates: true, eventLoops: 2)
        let home = dials(machine.addressesResolved([a]))[0].1
        _ = machine.subconnection(home, address: a, reported: .ready)
        let other = dials(machine.connectionWanted(a, onLoop: 1))[0].1
        _ = machine.subconnection(other, address: a, reported: .ready)
        // Both pass their lifetime; the one on loop 1 is replaced first.
        let second = machine.rotationDue(other, address: a)
        #expect(loops(second) == [1])
        let first = machine.rotationDue(home, address: a)
        #expect(loops(first) == [0])
        let ready = machine.subconnection(dials(second)[0].1, address: a, reported: .ready)
        #expect(ready.contains(.drain(other, .lifetimeExpired)), "the rotating connection on its own loop, not the oldest")
        #expect(!ready.contains(.drain(home, .lifetimeExpired)))
    }

    @Test func aRotationOfAConnectionAboveTheMinimumIsReplacedToo() {
        var machine = AddressReconciliation(minConnections: 1, maxConnections: 2, rotates: true, eventLoops: 2)
        let first = dials(machine.addressesResolved([a]))[0].1
        _ = machine.subconnection(first, address: a, reported: .ready)
        let extra = dials(machine.connectionWanted(a, onLoop: 1))[0].1
        _ = machine.subconnection(extra, address: a, reported: .ready)
        let replacement = machine.rotationDue(extra, address: a)
        #expect(loops(replacement) == [1], "its loop keeps a connection")
        #expect(machine.subconnection(dials(replacement)[0].1, address: a, reported: .ready).contains(.drain(extra, .lifetimeExpired)))
    }
}
