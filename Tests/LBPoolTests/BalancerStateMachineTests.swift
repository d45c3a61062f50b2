import Testing
@testable import LBPool

/// The composed machine: how reconciliation, ejection, health checks, stream caps, the subset
/// and the timers act on each other. (Each part alone has its own suite.)
@Suite struct BalancerStateMachineTests {
    typealias Machine = BalancerStateMachine
    let a = ResolvedAddress(ip: "10.0.0.1", port: 80)
    let b = ResolvedAddress(ip: "10.0.0.2", port: 80)
    let c = ResolvedAddress(ip: "10.0.0.3", port: 80)
    let ejection = OutlierEjection.Settings(
        consecutiveFailures: 5, baseEjectionTime: .seconds(30), maxEjectionTime: .seconds(300), minAvailableShare: 0.1)

    func dials(_ actions: [Machine.Action]) -> [(address: ResolvedAddress, id: SubconnectionID, streamCap: Int?)] {
        actions.compactMap { if case .dial(let address, let id, _, let cap) = $0 { (address, id, cap) } else { nil } }
    }

    func reports(_ actions: [Machine.Action]) -> [(PoolEvent.Kind, ResolvedAddress)] {
        actions.compactMap { if case .report(let kind, let address, _) = $0 { (kind, address) } else { nil } }
    }

    func delays(_ actions: [Machine.Action]) -> [Duration] {
        actions.compactMap { if case .startTimer(_, let delay) = $0 { delay } else { nil } }
    }

    /// Resolves `addresses` and makes every dialled connection ready; returns the ids by address.
    func ready(_ machine: inout Machine, _ addresses: [ResolvedAddress]) -> [ResolvedAddress: SubconnectionID] {
        var ids: [ResolvedAddress: SubconnectionID] = [:]
        for dial in dials(machine.resolved(addresses)) {
            _ = machine.subconnection(dial.id, address: dial.address, reported: .ready)
            ids[dial.address] = dial.id
        }
        return ids
    }

    @Test func aDialCarriesTheStreamCapLearnedFromTwoGoAwaysAtTheSameStream() {
        var machine = Machine(settings: .init(minConnections: 1), seed: 1)
        var id = ready(&machine, [a])[a]!
        var learned: [Machine.Action] = []
        var capsOfDials: [Int?] = []
        for _ in 0..<2 {
            let goAway = machine.subconnection(id, address: a, reported: .draining(.goAway(errorCode: .noError, lastStreamID: 199, debugData: "")))
            #expect(goAway.contains(.refreshResolution))
            learned += goAway.filter { if case .learnedStreamCap = $0 { true } else { false } }
            let replacement = dials(goAway)
            #expect(replacement.count == 1, "the replacement is dialled as soon as the connection drains")
            capsOfDials.append(replacement[0].streamCap)
            _ = machine.subconnection(id, address: a, reported: .closed(.connectionError("done"), wasReady: true))
            id = replacement[0].id
            _ = machine.subconnection(id, address: a, reported: .ready)
        }
        #expect(learned == [.learnedStreamCap(a, 100)])
        #expect(capsOfDials == [nil, 100], "the dial made after the second GOAWAY opens at most the learned 100 streams")
    }

    @Test func anEjectedAddressLeavesTheServingSetUntilItsTimerThenComesBackOnProbation() {
        var machine = Machine(settings: .init(minConnections: 1, outlierDetection: ejection), seed: 1)
        _ = ready(&machine, [a, b])
        #expect(machine.serving().map(\.address) == [a, b])

        let ejected = machine.failuresReached(a)
        #expect(ejected.first == .publish)
        #expect(ejected.contains(.setProbation(a, false)))
        #expect(ejected.contains(.startTimer(.ejectionEnds(a), after: .seconds(30))))
        #expect(reports(ejected).map(\.0) == [.ejected(for: .seconds(30))])
        #expect(machine.serving().map(\.address) == [b])
        #expect(machine.failuresReached(a).isEmpty, "already ejected")

        let probing = machine.timerFired(.ejectionEnds(a))
        #expect(probing.contains(.setProbation(a, true)) && probing.contains(.publish))
        #expect(machine.serving().map(\.address) == [a, b], "a probing address takes requests: the next one is its probe")
        #expect(machine.timerFired(.ejectionEnds(a)).isEmpty, "a timer fires once")

        // The probe fails: ejected again, for twice as long.
        let again = machine.failuresReached(a)
        #expect(again.contains(.startTimer(.ejectionEnds(a), after: .seconds(60))))
        _ = machine.timerFired(.ejectionEnds(a))
        let recovered = machine.probeSucceeded(a)
        #expect(reports(recovered).map(\.0) == [.recovered])
        #expect(recovered.contains(.setProbation(a, false)))
    }

    @Test func failuresOfAnAddressNoLongerResolvedEjectNothing() {
        var machine = Machine(settings: .init(minConnections: 1, outlierDetection: ejection), seed: 1)
        _ = ready(&machine, [a, b])
        let removed = machine.resolved([b])
        #expect(removed.contains(.forget(a)))
        // Its retiring connections still finish requests and count their failures.
        #expect(machine.failuresReached(a).isEmpty)
        #expect(machine.ejection?.health(of: a) == .healthy)
    }

    @Test func anEjectedMemberOfTheSubsetIsStoodInForAndStaysConnectedUntilItRecovers() {
        let subset = RendezvousSubset(size: 1, key: "client-1")
        var machine = Machine(settings: .init(minConnections: 1, outlierDetection: ejection, subset: subset), seed: 1)
        let ranking = subset.ranked([a, b, c])
        let first = dials(machine.resolved([a, b, c]))
        #expect(first.map(\.address) == [ranking[0]])
        _ = machine.subconnection(first[0].id, address: ranking[0], reported: .ready)

        let ejected = machine.failuresReached(ranking[0])
        let standIn = dials(ejected)
        #expect(standIn.map(\.address) == [ranking[1]], "the next-ranked address joins while the best one is out")
        #expect(reports(ejected).map(\.0).contains(.joinedSubset(rank: 2)))
        #expect(!ejected.contains { if case .drain = $0 { true } else { false } }, "the ejected member stays connected")
        #expect(machine.subset?.members == [ranking[0], ranking[1]])

        _ = machine.timerFired(.ejectionEnds(ranking[0]))
        #expect(machine.subset?.members == [ranking[0], ranking[1]], "on probation it is still out")
        let recovered = machine.probeSucceeded(ranking[0])
        #expect(recovered.contains(.drain(standIn[0].id, .leftSubset)), "recovered: the stand-in leaves")
        #expect(machine.subset?.members == [ranking[0]])
    }

    @Test func anAddressFailingItsHealthChecksLeavesTheServingSetAndTheSubsetTakesTheNext() {
        let subset = RendezvousSubset(size: 1, key: "client-2")
        var machine = Machine(
            settings: .init(minConnections: 1, healthThresholds: .init(healthy: 1, unhealthy: 2), subset: subset), seed: 1)
        let ranking = subset.ranked([a, b])
        let dial = dials(machine.resolved([a, b]))[0]
        let ready = machine.subconnection(dial.id, address: dial.address, reported: .ready)
        #expect(ready.contains(.checkHealth(dial.id)))

        #expect(machine.probed(dial.id, at: ranking[0], healthy: false).isEmpty, "one failure is below the threshold")
        let unhealthy = machine.probed(dial.id, at: ranking[0], healthy: false)
        #expect(reports(unhealthy).map(\.0).contains(.health(.unhealthy)))
        #expect(dials(unhealthy).map(\.address) == [ranking[1]])
        #expect(machine.serving().map(\.address) == [], "the stand-in is still connecting, the member takes no requests")

        let healthy = machine.probed(dial.id, at: ranking[0], healthy: true)
        #expect(reports(healthy).map(\.0).first == .health(.healthy))
        #expect(healthy.contains { if case .drain(_, .leftSubset) = $0 { true } else { false } })
        #expect(machine.serving().map(\.address) == [ranking[0]])
    }

    @Test func aClosedConnectionTakesItsHealthResultsAndItsRotationTimerWithIt() {
        var machine = Machine(
            settings: .init(
                minConnections: 1, rotation: .init(lifetime: .seconds(600), jitter: 0.1), healthThresholds: .init(healthy: 1, unhealthy: 1)),
            seed: 7)
        let dial = dials(machine.resolved([a]))[0]
        let ready = machine.subconnection(dial.id, address: a, reported: .ready)
        let lifetime = delays(ready)
        #expect(lifetime.count == 1 && lifetime[0] >= .seconds(540) && lifetime[0] <= .seconds(660))
        _ = machine.probed(dial.id, at: a, healthy: false)
        #expect(machine.serving().isEmpty)

        let closed = machine.subconnection(dial.id, address: a, reported: .closed(.connectionError("reset"), wasReady: true))
        #expect(closed.contains(.cancelTimer(.rotation(dial.id, a))))
        #expect(reports(closed).map(\.0).contains(.health(.unknown)), "its failed checks no longer count")
        #expect(dials(closed).count == 1)
        #expect(machine.timers.isEmpty)
        #expect(machine.timerFired(.rotation(dial.id, a)).isEmpty, "a cancelled timer that fires anyway is ignored")
    }

    @Test func aFailedDialRefreshesDNSCountsAFailureAndStartsTheBackoffTimer() {
        var machine = Machine(settings: .init(minConnections: 1, outlierDetection: ejection), seed: 3)
        let dial = dials(machine.resolved([a]))[0]
        let closed = machine.subconnection(dial.id, address: a, reported: .closed(.connectionError("refused"), wasReady: false))
        #expect(closed.contains(.refreshResolution))
        #expect(closed.contains(.countFailure(a)))
        let backoff = delays(closed)
        #expect(backoff.count == 1 && backoff[0] >= .milliseconds(800) && backoff[0] <= .milliseconds(1200))
        #expect(machine.timers == [.reconnect(a)])
        #expect(dials(machine.timerFired(.reconnect(a))).map(\.address) == [a])

        var quiet = Machine(settings: .init(minConnections: 1), seed: 3)
        let other = dials(quiet.resolved([a]))[0]
        let failed = quiet.subconnection(other.id, address: a, reported: .closed(.connectionError("refused"), wasReady: false))
        #expect(!failed.contains(.countFailure(a)), "without outlier detection nothing counts failures")
    }

    @Test func aProtocolViolationCountsAsAFailureOfTheAddress() {
        var machine = Machine(settings: .init(minConnections: 1, outlierDetection: ejection), seed: 1)
        let id = ready(&machine, [a])[a]!
        let violation = machine.subconnection(id, address: a, reported: .draining(.protocolViolation(.protocolError, "bad frame")))
        #expect(violation.contains(.countFailure(a)))
        #expect(!violation.contains(.refreshResolution))
    }

    @Test func aRemovedAddressCancelsItsTimersAndForgetsWhatWasLearnedOfIt() {
        var machine = Machine(settings: .init(minConnections: 1, outlierDetection: ejection), seed: 1)
        let ids = ready(&machine, [a, b])
        _ = machine.failuresReached(b)
        let goAway = machine.subconnection(
            ids[a]!, address: a, reported: .draining(.goAway(errorCode: .noError, lastStreamID: 99, debugData: "")))
        let redial = dials(goAway)[0]
        _ = machine.subconnection(redial.id, address: a, reported: .closed(.connectionError("refused"), wasReady: false))
        #expect(machine.timers == [.reconnect(a), .ejectionEnds(b)])
        #expect(machine.streamCaps[a] != nil)

        let removed = machine.resolved([c])
        #expect(removed.contains(.cancelTimer(.reconnect(a))) && removed.contains(.cancelTimer(.ejectionEnds(b))))
        #expect(removed.contains(.forget(a)) && removed.contains(.forget(b)))
        #expect(machine.timers.isEmpty && machine.streamCaps.isEmpty)
        #expect(machine.ejection?.health(of: b) == .healthy)
        #expect(machine.timerFired(.reconnect(a)).isEmpty)
    }

    @Test func theSameSeedDrawsTheSameJitter() {
        func lifetimes(seed: UInt64) -> [Duration] {
            var machine = Machine(settings: .init(minConnections: 4, rotation: .init(lifetime: .seconds(100), jitter: 0.5)), seed: seed)
            return dials(machine.resolved([a])).flatMap { delays(machine.subconnection($0.id, address: a, reported: .ready)) }
        }
        #expect(lifetimes(seed: 42) == lifetimes(seed: 42))
        #expect(lifetimes(seed: 42) != lifetimes(seed: 43))
        #expect(lifetimes(seed: 42).allSatisfy { $0 >= .seconds(50) && $0 <= .seconds(150) })
        #expect(Set(lifetimes(seed: 42)).count > 1, "connections dialled together do not all expire together")
    }

    @Test func shutDownCancelsEveryTimerDrainsEverythingAndFinishesOnceTheLastConnectionClosed() {
        var machine = Machine(
            settings: .init(minConnections: 1, rotation: .init(lifetime: .seconds(60), jitter: 0), outlierDetection: ejection), seed: 1)
        let ids = ready(&machine, [a, b])
        _ = machine.failuresReached(a)
        #expect(machine.timers.count == 3)

        let shutDown = machine.shutDown()
        #expect(shutDown.filter { if case .cancelTimer = $0 { true } else { false } }.count == 3)
        #expect(shutDown.contains(.drain(ids[a]!, .poolShutdown)) && shutDown.contains(.drain(ids[b]!, .poolShutdown)))
        #expect(!shutDown.contains(.finished))
        _ = machine.subconnection(ids[a]!, address: a, reported: .closed(.poolShutdown, wasReady: true))
        let last = machine.subconnection(ids[b]!, address: b, reported: .closed(.poolShutdown, wasReady: true))
        #expect(last.contains(.finished))
        #expect(dials(last).isEmpty, "nothing is dialled while shutting down")
    }

    @Test func withASubsetDNSChangesAndSubsetChangesAreReportedApart() {
        let subset = RendezvousSubset(size: 1, key: "client-3")
        var machine = Machine(settings: .init(minConnections: 1, subset: subset), seed: 1)
        let ranking = subset.ranked([a, b])
        let first = machine.resolved([a, b])
        #expect(reports(first).filter { $0.0 == .addressAdded }.map(\.1).sorted { $0.ip < $1.ip } == [a, b])
        #expect(reports(first).contains { $0.0 == .joinedSubset(rank: 1) && $0.1 == ranking[0] })
        #expect(first.contains(.subsetMembers([ranking[0]: 1])))

        let gone = machine.resolved([ranking[1]])
        #expect(reports(gone).contains { $0.0 == .addressRemoved && $0.1 == ranking[0] }, "the DNS change")
        #expect(reports(gone).contains { $0.0 == .leftSubset && $0.1 == ranking[0] }, "and the subset change")
        #expect(reports(gone).contains { $0.0 == .joinedSubset(rank: 1) && $0.1 == ranking[1] })
    }
}
