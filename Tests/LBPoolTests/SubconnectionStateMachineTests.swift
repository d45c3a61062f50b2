import Testing
@testable import LBPool

@Suite struct SubconnectionStateMachineTests {
    typealias Actions = SubconnectionStateMachine.Actions

    @Test func firstSettingsMakesItReady() {
        var machine = SubconnectionStateMachine()
        #expect(machine.settingsReceived(maxConcurrentStreams: 128) == Actions(notifyReady: true))
        #expect(machine.state == .ready)
        #expect(machine.maxConcurrentStreams == 128)
        #expect(machine.settingsReceived(maxConcurrentStreams: nil) == .none)
        #expect(machine.maxConcurrentStreams == 128)
    }

    @Test func goAwayWithOpenStreamsDrainsThenClosesAfterTheLastStream() {
        var machine = SubconnectionStateMachine()
        _ = machine.settingsReceived(maxConcurrentStreams: nil)
        machine.streamOpened()
        machine.streamOpened()
        let reason = ConnectionCloseReason.goAway(errorCode: .noError, lastStreamID: 3, debugData: "")
        #expect(machine.goAwayReceived(lastStreamID: 3, errorCode: .noError, debugData: "") == Actions(notifyDraining: reason))
        #expect(machine.streamClosed() == .none)
        #expect(machine.streamClosed() == Actions(closeChannel: true))
        #expect(machine.channelClosed(error: nil) == Actions(notifyClosed: reason))
        #expect(machine.state == .closed)
    }

    @Test func idleGoAwayClosesAtOnce() {
        var machine = SubconnectionStateMachine()
        _ = machine.settingsReceived(maxConcurrentStreams: nil)
        let actions = machine.goAwayReceived(lastStreamID: 0, errorCode: .noError, debugData: "bye")
        #expect(actions.closeChannel)
        #expect(actions.notifyDraining == .goAway(errorCode: .noError, lastStreamID: 0, debugData: "bye"))
    }

    @Test func goAwayWhileConnectingNeverBecomesReady() {
        var machine = SubconnectionStateMachine()
        let actions = machine.goAwayReceived(lastStreamID: 0, errorCode: .enhanceYourCalm, debugData: "")
        #expect(actions.notifyDraining != nil)
        #expect(machine.settingsReceived(maxConcurrentStreams: 10) == .none)
        if case .draining = machine.state {} else { Issue.record("expected draining, got \(machine.state)") }
    }

    @Test func secondGoAwayLowersTheLastStreamIDOnly() {
        var machine = SubconnectionStateMachine()
        _ = machine.settingsReceived(maxConcurrentStreams: nil)
        machine.streamOpened()
        _ = machine.goAwayReceived(lastStreamID: 2_147_483_647, errorCode: .noError, debugData: "")
        #expect(machine.goAwayReceived(lastStreamID: 5, errorCode: .noError, debugData: "") == .none)
        #expect(machine.goAwayLastStreamID == 5)
    }

    @Test func drainRequestedStopsNewStreamsAndClosesWhenIdle() {
        var machine = SubconnectionStateMachine()
        _ = machine.settingsReceived(maxConcurrentStreams: nil)
        machine.streamOpened()
        #expect(machine.drainRequested(.addressRemoved) == Actions(notifyDraining: .addressRemoved))
        #expect(machine.drainRequested(.poolShutdown) == .none)
        #expect(machine.streamClosed() == Actions(closeChannel: true))
    }

    @Test func closeWithoutGoAwayReportsDrainingThenClosed() {
        var machine = SubconnectionStateMachine()
        _ = machine.settingsReceived(maxConcurrentStreams: nil)
        let reason = ConnectionCloseReason.connectionError("reset")
        #expect(machine.channelClosed(error: "reset") == Actions(notifyDraining: reason, notifyClosed: reason))
        #expect(machine.channelClosed(error: "again") == .none)
    }
}
