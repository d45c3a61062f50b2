import Testing
@testable import LBPool

@Suite struct ConnectionClosingSignalTests {
    @Test func firesOnceForEveryWaiterWithTheFirstReason() async throws {
        let signal = ConnectionClosingSignal()
        #expect(signal.reason == nil)
        try await withThrowingTaskGroup(of: ConnectionCloseReason.self) { group in
            for _ in 0..<5 { group.addTask { try await signal.wait() } }
            signal.fire(.goAway(errorCode: .noError, lastStreamID: 9, debugData: "bye"))
            signal.fire(.poolShutdown)
            for try await reason in group {
                #expect(reason == .goAway(errorCode: .noError, lastStreamID: 9, debugData: "bye"))
            }
        }
        #expect(try await signal.wait() == .goAway(errorCode: .noError, lastStreamID: 9, debugData: "bye"))
    }

    @Test func isASequenceOfOneElement() async throws {
        let signal = ConnectionClosingSignal()
        signal.fire(.addressRemoved)
        var reasons: [ConnectionCloseReason] = []
        for try await reason in signal { reasons.append(reason) }
        #expect(reasons == [.addressRemoved])
    }

    @Test func cancellationEndsAWaitWithCancellationError() async {
        let signal = ConnectionClosingSignal()
        let waiter = Task { try await signal.wait() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(signal.reason == nil)
    }
}
