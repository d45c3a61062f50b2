import Testing
@testable import LBPool

/// The picker snapshot and the requests waiting for it to change.
@Suite(.timeLimit(.minutes(1))) struct PickerStateTests {
    let a = ResolvedAddress(ip: "127.0.0.2", port: 8080)

    @Test func anUpdateIsSeenByPicksAndBumpsTheVersion() {
        let state = PickerState()
        let (_, before) = state.current()
        #expect(state.forPick().endpoints.isEmpty)
        state.update { $0.endpoints = ReadyEndpoints(testing: [.init(address: a)]) }
        let pick = state.forPick()
        #expect(pick.endpoints.map(\.address) == [a])
        #expect(!pick.isShuttingDown)
        #expect(pick.version == before &+ 1)
        state.capacityFreed()
        #expect(state.current().version == before &+ 2, "a freed stream wakes waiters too")
    }

    @Test func aWaitingRequestWakesOnTheNextUpdateNotAtItsDeadline() async {
        let state = PickerState()
        let (_, version) = state.current()
        // The deadline is far beyond the suite's time limit: only the update can end the wait.
        async let waited: Void = state.waitForChange(after: version, until: .now + .seconds(600))
        state.update { $0.isShuttingDown = true }
        await waited
        #expect(state.current().snapshot.isShuttingDown)
    }

    @Test func aWaitEndsAtItsDeadlineWithoutAnUpdate() async {
        let state = PickerState()
        let (_, version) = state.current()
        await state.waitForChange(after: version, until: .now)
        #expect(state.current().version == version)
    }

    @Test func aWaitForAnOlderVersionReturnsAtOnce() async {
        let state = PickerState()
        let (_, old) = state.current()
        state.capacityFreed()
        await state.waitForChange(after: old, until: .now + .seconds(600))
        #expect(state.current().version != old)
    }

    @Test func aCancelledWaitEnds() async {
        let state = PickerState()
        let (_, version) = state.current()
        let task = Task { await state.waitForChange(after: version, until: .now + .seconds(600)) }
        task.cancel()
        await task.value
        #expect(state.current().version == version)
    }
}
