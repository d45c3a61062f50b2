import Synchronization
import Testing
@testable import LBPool

/// The active health checker on a manual clock: a probe per interval, busy connections skipped,
/// and nothing reported once the connection goes away.
@Suite(.timeLimit(.minutes(1))) struct HealthCheckerTests {
    /// A connection whose probes answer as scripted.
    final class ScriptedTarget: HealthCheckTarget {
        struct State {
            var answers: [Bool]
            var goingAway = false
            var busy = false
            var reserved = 0
            var released = 0
            var probes = 0
            /// Makes the connection go away while this probe (1-based) is on the wire.
            var goAwayDuringProbe: Int?
        }

        let state: Mutex<State>

        init(answers: [Bool]) {
            state = Mutex(State(answers: answers))
        }

        var isGoingAway: Bool { state.withLock { $0.goingAway } }

        func reserveStream() -> Bool {
            state.withLock { state in
                guard !state.busy else { return false }
                state.reserved += 1
                return true
            }
        }

        func releaseStream() { state.withLock { $0.released += 1 } }

        func probe(timeout: Duration) async -> Bool {
            state.withLock { state in
                state.probes += 1
                if state.goAwayDuringProbe == state.probes { state.goingAway = true }
                return state.answers.isEmpty ? true : state.answers.removeFirst()
            }
        }
    }

    final class Reports: Sendable {
        let results = Mutex<[Bool]>([])
        func add(_ healthy: Bool) { results.withLock { $0.append(healthy) } }
        var all: [Bool] { results.withLock { $0 } }
    }

    let interval = Duration.seconds(5)

    func start(_ target: ScriptedTarget, _ clock: TestClock, _ reports: Reports) -> Task<Void, Never> {
        let checker = HealthChecker(interval: interval, timeout: .seconds(1), clock: clock)
        return Task { await checker.run(target) { reports.add($0) } }
    }

    @Test func oneProbePerIntervalEachReported() async {
        let clock = TestClock(), reports = Reports()
        let target = ScriptedTarget(answers: [true, false, true])
        let task = start(target, clock, reports)
        for round in 1...3 {
            await clock.waitForSleepers(1)
            #expect(reports.all.count == round - 1, "no probe before the interval passed")
            clock.advance(by: interval)
        }
        await clock.waitForSleepers(1)
        #expect(reports.all == [true, false, true])
        #expect(target.state.withLock { ($0.reserved, $0.released) } == (3, 3))
        task.cancel()
        await task.value
    }

    @Test func aBusyConnectionIsSkippedNotFailed() async {
        let clock = TestClock(), reports = Reports()
        let target = ScriptedTarget(answers: [false])
        target.state.withLock { $0.busy = true }
        let task = start(target, clock, reports)
        await clock.waitForSleepers(1)
        clock.advance(by: interval)
        await clock.waitForSleepers(1)
        #expect(reports.all.isEmpty)
        #expect(target.state.withLock { $0.probes } == 0)
        target.state.withLock { $0.busy = false }
        clock.advance(by: interval)
        await clock.waitForSleepers(1)
        #expect(reports.all == [false])
        task.cancel()
        await task.value
    }

    @Test func checkingEndsWhenTheConnectionGoesAwayAndALateResultIsNotReported() async {
        let clock = TestClock(), reports = Reports()
        let target = ScriptedTarget(answers: [true, false])
        target.state.withLock { $0.goAwayDuringProbe = 2 }
        let task = start(target, clock, reports)
        await clock.waitForSleepers(1)
        clock.advance(by: interval)
        await clock.waitForSleepers(1)
        clock.advance(by: interval)
        // The second probe's connection went away while it ran: the loop ends, unreported.
        await task.value
        #expect(reports.all == [true])
        #expect(target.state.withLock { ($0.reserved, $0.released) } == (2, 2))
    }
}
