import Testing
@testable import LBPool

/// Learning a server's streams per connection from its GOAWAYs, and keeping to it.
@Suite struct StreamCapTests {
    @Test func twoGoAwaysInARowAtTheSameIDTeachTheCap() {
        var estimate = StreamCapEstimate()
        estimate.goAwayReceived(errorCode: .noError, lastStreamID: 99)
        #expect(estimate.cap == nil, "one GOAWAY may be a shutdown")
        estimate.goAwayReceived(errorCode: .noError, lastStreamID: 99)
        #expect(estimate.cap == 50)
    }

    @Test func differentIDsErrorsAndTinyCapsTeachNothing() {
        var estimate = StreamCapEstimate()
        estimate.goAwayReceived(errorCode: .noError, lastStreamID: 99)
        estimate.goAwayReceived(errorCode: .noError, lastStreamID: 101)
        #expect(estimate.cap == nil)
        estimate.goAwayReceived(errorCode: .internalError, lastStreamID: 101)
        #expect(estimate.cap == nil, "GOAWAY with an error is no cap")
        var tiny = StreamCapEstimate()
        tiny.goAwayReceived(errorCode: .noError, lastStreamID: 5)
        tiny.goAwayReceived(errorCode: .noError, lastStreamID: 5)
        #expect(tiny.cap == nil)
        var shutdown = StreamCapEstimate()
        shutdown.goAwayReceived(errorCode: .noError, lastStreamID: Int(Int32.max))
        shutdown.goAwayReceived(errorCode: .noError, lastStreamID: Int(Int32.max))
        #expect(shutdown.cap == nil, "the first GOAWAY of a graceful shutdown")
    }

    @Test func aChangedLimitIsForgottenThenLearnedAgain() {
        var estimate = StreamCapEstimate()
        estimate.goAwayReceived(errorCode: .noError, lastStreamID: 39)
        estimate.goAwayReceived(errorCode: .noError, lastStreamID: 39)
        #expect(estimate.cap == 20)
        estimate.goAwayReceived(errorCode: .noError, lastStreamID: 19)
        #expect(estimate.cap == nil)
        estimate.goAwayReceived(errorCode: .noError, lastStreamID: 19)
        #expect(estimate.cap == 10)
    }

    @Test func reservationsStopAtTheCapAndTheLastStartedStreamIsTold() {
        let shared = SubconnectionShared(streamCap: 3)
        var reserved = 0
        for _ in 0..<5 where shared.tryReserve() { reserved += 1 }
        #expect(reserved == 3)
        #expect(shared.inFlight.load(ordering: .relaxed) == 3, "a refused reservation gives its slot back")
        #expect(shared.streamStarted() == false)
        #expect(shared.streamStarted() == false)
        #expect(shared.streamStarted() == true, "the third of three")
        _ = shared.release()
        #expect(shared.tryReserve() == false, "released slots do not raise the cap")
    }

    @Test func withoutACapOnlyConcurrencyLimits() {
        let shared = SubconnectionShared(streamCap: nil)
        shared.maxConcurrentStreams.store(2, ordering: .relaxed)
        #expect(shared.tryReserve() && shared.tryReserve())
        #expect(!shared.tryReserve())
        #expect(shared.release() == true, "it was full")
        #expect(shared.tryReserve())
        #expect(shared.streamStarted() == false)
    }
}
