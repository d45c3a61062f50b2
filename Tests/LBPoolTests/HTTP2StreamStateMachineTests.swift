import HTTPTypes
import Testing
@testable import LBPool

/// One stream's states and checks (RFC 9113 §5.1, §8.1), frame by frame, without I/O.
@Suite struct HTTP2StreamStateMachineTests {
    typealias Machine = HTTP2StreamStateMachine

    func head(_ fields: [(String, String)], trailers: Bool = false) -> ResponseHead {
        var head = ResponseHead(trailers ? .trailers : .head)
        var cache = ResponseFieldCache()
        for (name, value) in fields { head.add(name, value, cache: &cache) }
        return head
    }

    /// The stream error `body` throws on `machine`, if any.
    func streamError(_ machine: inout Machine, _ body: (inout Machine) throws -> Void) -> Machine.StreamError? {
        do {
            try body(&machine)
            return nil
        } catch {
            return error as? Machine.StreamError
        }
    }

    @Test func aGetGoesFromHalfClosedLocalToClosedWithItsBody() throws {
        var machine = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 100)
        #expect(machine.state == .halfClosedLocal)
        let outcome = try machine.headersReceived(head([(":status", "200"), ("content-length", "5")]), endStream: false)
        #expect(outcome == .head(HTTPResponse(status: .ok, headerFields: [.contentLength: "5"]), endStream: false))
        #expect(machine.expectsTrailers)
        let outcome1 = try machine.dataReceived(length: 2, flowControlledLength: 2, endStream: false)
        #expect(outcome1 == false)
        let outcome2 = try machine.dataReceived(length: 3, flowControlledLength: 3, endStream: true)
        #expect(outcome2 == true)
        #expect(machine.state == .closed)
        #expect(machine.receiveWindow == 95)
    }

    @Test func aPostIsOpenUntilItsBodyIsSentAndTheResponseEnds() throws {
        var machine = Machine(endStreamSent: false, isHeadRequest: false, receiveWindow: 100)
        #expect(machine.state == .open)
        _ = try machine.headersReceived(head([(":status", "200")]), endStream: true)
        #expect(machine.state == .halfClosedRemote)
        #expect(machine.localOpen && !machine.remoteOpen)
        machine.endSent()
        #expect(machine.state == .closed)
    }

    @Test func informationalHeadsAreSkippedAndTrailersEndTheBody() throws {
        var machine = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 100)
        let outcome3 = try machine.headersReceived(head([(":status", "103")]), endStream: false)
        #expect(outcome3 == .informational)
        #expect(!machine.expectsTrailers)
        _ = try machine.headersReceived(head([(":status", "200")]), endStream: false)
        _ = try machine.dataReceived(length: 4, flowControlledLength: 4, endStream: false)
        let trailers = try machine.headersReceived(head([("grpc-status", "0")], trailers: true), endStream: true)
        #expect(trailers == .trailers([HTTPField.Name("grpc-status")!: "0"]))
        #expect(machine.state == .closed)
        #expect(machine.response == .complete)
    }

    @Test func trailersWithoutEndStreamOrWithPseudoHeadersAreProtocolErrors() {
        var machine = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 100)
        _ = try? machine.headersReceived(head([(":status", "200")]), endStream: false)
        var copy = machine
        let open = streamError(&copy) { _ = try $0.headersReceived(head([("x", "1")], trailers: true), endStream: false) }
        #expect(open == Machine.StreamError(code: .protocolError, message: "trailers without END_STREAM"))
        let pseudo = streamError(&machine) { _ = try $0.headersReceived(head([(":status", "200")], trailers: true), endStream: true) }
        #expect(pseudo?.code == .protocolError)
        #expect(pseudo?.message.contains("malformed trailers") == true, "\(String(describing: pseudo))")
    }

    @Test func dataAfterTheEndIsStreamClosedAndBeforeTheHeadAProtocolError() throws {
        var early = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 100)
        #expect(streamError(&early) { _ = try $0.dataReceived(length: 1, flowControlledLength: 1, endStream: false) }?.code == .protocolError)
        var late = Machine(endStreamSent: false, isHeadRequest: false, receiveWindow: 100)
        _ = try late.headersReceived(head([(":status", "200")]), endStream: true)
        #expect(streamError(&late) { _ = try $0.dataReceived(length: 1, flowControlledLength: 1, endStream: false) }?.code == .streamClosed)
        #expect(streamError(&late) { _ = try $0.headersReceived(head([(":status", "200")]), endStream: true) }?.code == .streamClosed)
    }

    @Test func theWindowAndTheContentLengthBoundTheBody() throws {
        var machine = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 10)
        _ = try machine.headersReceived(head([(":status", "200"), ("content-length", "8")]), endStream: false)
        #expect(
            streamError(&machine) { _ = try $0.dataReceived(length: 9, flowControlledLength: 9, endStream: false) }?.message
                == "body of more than 8 bytes, its content-length")
        var small = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 10)
        _ = try small.headersReceived(head([(":status", "200")]), endStream: false)
        #expect(streamError(&small) { _ = try $0.dataReceived(length: 5, flowControlledLength: 11, endStream: false) }?.code == .flowControlError)
        var short = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 10)
        _ = try short.headersReceived(head([(":status", "200"), ("content-length", "8")]), endStream: false)
        #expect(
            streamError(&short) { _ = try $0.dataReceived(length: 7, flowControlledLength: 7, endStream: true) }?.message
                == "body of 7 bytes, content-length says 8")
    }

    @Test func aHeadResponseOrA304HasNoBodyWhateverItsContentLength() throws {
        var machine = Machine(endStreamSent: true, isHeadRequest: true, receiveWindow: 10)
        _ = try machine.headersReceived(head([(":status", "200"), ("content-length", "1000")]), endStream: true)
        #expect(machine.state == .closed)
        var notModified = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 10)
        _ = try notModified.headersReceived(head([(":status", "304"), ("content-length", "1000")]), endStream: true)
        #expect(notModified.state == .closed)
    }

    @Test func resetWithNoErrorAfterTheDeclaredBodyCompletesTheResponse() throws {
        var whole = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 100)
        _ = try whole.headersReceived(head([(":status", "200"), ("content-length", "3")]), endStream: false)
        _ = try whole.dataReceived(length: 3, flowControlledLength: 3, endStream: false)
        let outcome4 = whole.resetReceived(.noError)
        #expect(outcome4)
        #expect(whole.state == .closed)
        var partial = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 100)
        _ = try partial.headersReceived(head([(":status", "200"), ("content-length", "3")]), endStream: false)
        _ = try partial.dataReceived(length: 2, flowControlledLength: 2, endStream: false)
        let outcome5 = partial.resetReceived(.noError)
        #expect(!outcome5, "two of three bytes is not a whole body")
        var unknownLength = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 100)
        _ = try unknownLength.headersReceived(head([(":status", "200")]), endStream: false)
        let outcome6 = unknownLength.resetReceived(.noError)
        #expect(!outcome6, "without a content-length, only END_STREAM ends a body")
        var upload = Machine(endStreamSent: false, isHeadRequest: false, receiveWindow: 100)
        _ = try upload.headersReceived(head([(":status", "200")]), endStream: true)
        let outcome7 = upload.resetReceived(.noError)
        #expect(outcome7, "RFC 9113 §8.1: the server stops the upload after a complete response")
        var cancelled = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 100)
        _ = try cancelled.headersReceived(head([(":status", "200"), ("content-length", "0")]), endStream: false)
        let outcome8 = cancelled.resetReceived(.cancel)
        #expect(!outcome8)
    }

    @Test func windowUpdatesAreOwedOnlyWhileTheServerMaySend() throws {
        var machine = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 10)
        _ = try machine.headersReceived(head([(":status", "200")]), endStream: false)
        _ = try machine.dataReceived(length: 6, flowControlledLength: 8, endStream: false)
        let outcome9 = machine.paddingDiscarded(2)
        #expect(outcome9 == 2)
        let outcome10 = machine.bodyConsumed(6)
        #expect(outcome10 == 6)
        #expect(machine.receiveWindow == 10)
        _ = try machine.dataReceived(length: 1, flowControlledLength: 1, endStream: true)
        let outcome11 = machine.bodyConsumed(1)
        #expect(outcome11 == nil)
    }

    @Test func aDeclaredBodyGetsNoMoreWindowThanItHasLeft() throws {
        // 100 000 bytes declared, a window of 65 535: the window is given back while the rest
        // of the body (plus slack for padding) needs it, and no further.
        let slack = Machine.paddingSlack
        var machine = Machine(endStreamSent: true, isHeadRequest: false, receiveWindow: 65_535)
        _ = try machine.headersReceived(head([(":status", "200"), ("content-length", "100000")]), endStream: false)
        _ = try machine.dataReceived(length: 16_384, flowControlledLength: 16_384, endStream: false)
        #expect(machine.bodyConsumed(16_384) == 16_384, "still 83 616 to come, 49 151 open")
        _ = try machine.dataReceived(length: 40_000, flowControlledLength: 40_000, endStream: false)
        // 43 616 left; the window is 25 535 and needs 43 616 + slack.
        #expect(machine.bodyConsumed(40_000) == 43_616 + slack - 25_535)
        #expect(machine.receiveWindow == 43_616 + slack)
        _ = try machine.dataReceived(length: 40_000, flowControlledLength: 40_000, endStream: false)
        #expect(machine.bodyConsumed(40_000) == nil, "3 616 left, 3 616 + slack open")
        // Padding is always given back: it is not part of the body.
        _ = try machine.dataReceived(length: 16, flowControlledLength: 32, endStream: false)
        #expect(machine.paddingDiscarded(16) == 16)
    }
}

/// The token bucket of frames that do nothing useful.
@Suite struct HTTP2GlitchBudgetTests {
    @Test func aBurstIsAllowedThenTheRateRefillsIt() {
        var budget = HTTP2GlitchBudget(burst: 10, perSecond: 5, now: 0)
        let outcome12 = budget.spend(10, now: 0)
        #expect(outcome12)
        let outcome13 = budget.spend(1, now: 0)
        #expect(!outcome13, "the eleventh at once is over the burst")
        var refilled = HTTP2GlitchBudget(burst: 10, perSecond: 5, now: 0)
        let outcome14 = refilled.spend(10, now: 0)
        #expect(outcome14)
        let outcome15 = refilled.spend(5, now: 1_000_000_000)
        #expect(outcome15, "one second gives back five")
        let outcome16 = refilled.spend(1, now: 1_000_000_000)
        #expect(!outcome16)
    }

    @Test func aSteadyTrickleUnderTheRateNeverRunsOut() {
        var budget = HTTP2GlitchBudget(burst: 10, perSecond: 100, now: 0)
        for tick in 1...10_000 {
            let outcome17 = budget.spend(1, now: Int64(tick) * 20_000_000)
            #expect(outcome17, "tick \(tick)")
        }
    }
}
