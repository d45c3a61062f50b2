import Testing
@testable import LBPool

@Suite struct AddressReconciliationTests {
    let a = ResolvedAddress(ip: "10.0.0.1", port: 80)
    let b = ResolvedAddress(ip: "10.0.0.2", port: 80)
    let c = ResolvedAddress(ip: "10.0.0.3", port: 80)

    func dials(_ actions: [AddressReconciliation.Action]) -> [(ResolvedAddress, SubconnectionID)] {
        actions.compactMap { if case .dial(let address, let id) = $0 { return (address, id) } else { return nil } }
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
}
