import Testing
@testable import LBPool

@Suite struct SubconnectionAbortTests {
    @Test func abortClosesAtOnceEvenWithOpenStreams() {
        var machine = SubconnectionStateMachine()
        _ = machine.settingsReceived(maxConcurrentStreams: nil)
        machine.streamOpened()
        #expect(machine.abort(.keepaliveTimeout) == .init(notifyDraining: .keepaliveTimeout, closeChannel: true))
        #expect(machine.channelClosed(error: nil) == .init(notifyClosed: .keepaliveTimeout))
    }

    @Test func abortWhileDrainingKeepsTheFirstReason() {
        var machine = SubconnectionStateMachine()
        _ = machine.settingsReceived(maxConcurrentStreams: nil)
        machine.streamOpened()
        _ = machine.drainRequested(.lifetimeExpired)
        #expect(machine.abort(.connectionError("drain deadline reached")) == .init(closeChannel: true))
        #expect(machine.channelClosed(error: nil) == .init(notifyClosed: .lifetimeExpired))
    }
}
