import NIOCore
import NIOPosix
import Testing
@testable import LBPool

/// Outbound flow control: what may be sent, and what waits for WINDOW_UPDATE.
@Suite struct HTTP2SendWindowsTests {
    func take(_ windows: inout HTTP2SendWindows) -> [(UInt32, Int, Bool)] {
        var frames: [(UInt32, Int, Bool)] = []
        windows.take { frames.append(($0.stream, $0.data.readableBytes, $0.endStream)) }
        return frames
    }

    /// The error `change` throws on fresh windows with stream 1 open.
    func throwsConnectionError(_ change: (inout HTTP2SendWindows) throws(HTTP2ConnectionError) -> Void) -> HTTP2ConnectionError? {
        var windows = HTTP2SendWindows()
        windows.open(1)
        do {
            try change(&windows)
            return nil
        } catch {
            return error
        }
    }

    func bytes(_ count: Int) -> ByteBuffer {
        ByteBuffer(repeating: 0x61, count: count)
    }

    @Test func aBodyWithinTheWindowsGoesOutInFramesOfTheMaximumSize() {
        var windows = HTTP2SendWindows()
        windows.open(1)
        let result1 = windows.enqueue(.init(data: bytes(40_000), endStream: true), on: 1)
        #expect(result1)
        let frames = take(&windows)
        #expect(frames.map(\.1) == [16_384, 16_384, 7_232])
        #expect(frames.map(\.2) == [false, false, true])
        #expect(windows.connectionWindow == 65_535 - 40_000)
    }

    @Test func aBodyBeyondTheStreamWindowWaitsForWindowUpdate() throws {
        var windows = HTTP2SendWindows()
        try windows.initialWindowChanged(to: 10_000)
        windows.open(1)
        let result2 = windows.enqueue(.init(data: bytes(25_000), endStream: true), on: 1)
        #expect(result2)
        #expect(take(&windows).map(\.1) == [10_000])
        #expect(take(&windows).isEmpty, "nothing more without a window")
        let result3 = windows.streamWindowUpdate(10_000, on: 1)
        #expect(result3 == nil)
        #expect(take(&windows).map(\.1) == [10_000])
        let result4 = windows.streamWindowUpdate(10_000, on: 1)
        #expect(result4 == nil)
        let last = take(&windows)
        #expect(last.map(\.1) == [5_000])
        #expect(last.map(\.2) == [true])
    }

    @Test func theConnectionWindowIsSharedInTheOrderStreamsStartedWaiting() throws {
        var windows = HTTP2SendWindows()
        windows.open(1)
        windows.open(3)
        let result5 = windows.enqueue(.init(data: bytes(60_000), endStream: true), on: 1)
        #expect(result5)
        let result6 = windows.enqueue(.init(data: bytes(10_000), endStream: true), on: 3)
        #expect(result6)
        let first = take(&windows)
        #expect(first.reduce(0) { $0 + $1.1 } == 65_535, "the whole connection window is used")
        #expect(first.filter { $0.0 == 3 }.map(\.1) == [5_535])
        try windows.connectionWindowUpdate(100_000)
        let rest = take(&windows)
        #expect(rest.map(\.0) == [3])
        #expect(rest.map(\.1) == [4_465])
    }

    @Test func aLowerInitialWindowCanMakeAStreamWindowNegative() throws {
        var windows = HTTP2SendWindows()
        windows.open(1)
        let result7 = windows.enqueue(.init(data: bytes(1_000), endStream: false), on: 1)
        #expect(result7)
        _ = take(&windows)
        try windows.initialWindowChanged(to: 0)
        let result8 = windows.enqueue(.init(data: bytes(10), endStream: true), on: 1)
        #expect(result8)
        #expect(take(&windows).isEmpty)
        let result9 = windows.streamWindowUpdate(1_000, on: 1)
        #expect(result9 == nil, "back to 0: still nothing")
        #expect(take(&windows).isEmpty)
        let result10 = windows.streamWindowUpdate(10, on: 1)
        #expect(result10 == nil)
        #expect(take(&windows).map(\.1) == [10])
    }

    @Test func anEmptyEndOfStreamNeedsNoWindow() throws {
        var windows = HTTP2SendWindows()
        try windows.initialWindowChanged(to: 0)
        windows.open(1)
        let result11 = windows.enqueue(.init(data: ByteBuffer(), endStream: true), on: 1)
        #expect(result11)
        let frames = take(&windows)
        #expect(frames.map(\.1) == [0])
        #expect(frames.map(\.2) == [true])
    }

    @Test func invalidUpdatesAreRefusedAndClosingReturnsThePendingPromises() throws {
        var windows = HTTP2SendWindows()
        windows.open(1)
        let result12 = windows.streamWindowUpdate(0, on: 1)
        #expect(result12 == HTTP2Code.protocolError)
        let result13 = windows.streamWindowUpdate(Int(Int32.max), on: 1)
        #expect(result13 == HTTP2Code.flowControlError)
        let zero = throwsConnectionError { (windows: inout HTTP2SendWindows) throws(HTTP2ConnectionError) in try windows.connectionWindowUpdate(0) }
        #expect(zero?.code == HTTP2Code.protocolError)
        let overflow = throwsConnectionError { (windows: inout HTTP2SendWindows) throws(HTTP2ConnectionError) in
            try windows.connectionWindowUpdate(Int(Int32.max))
        }
        #expect(overflow?.code == HTTP2Code.flowControlError)
        let tooLarge = throwsConnectionError { (windows: inout HTTP2SendWindows) throws(HTTP2ConnectionError) in
            try windows.initialWindowChanged(to: UInt32(Int32.max) + 1)
        }
        #expect(tooLarge?.code == HTTP2Code.flowControlError)
        let notOpen = windows.enqueue(.init(data: bytes(1), endStream: true), on: 9)
        #expect(!notOpen, "a stream that is not open")

        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: Void.self)
        try windows.initialWindowChanged(to: 0)
        windows.open(3)
        let result14 = windows.enqueue(.init(data: bytes(5), endStream: true, promise: promise), on: 3)
        #expect(result14)
        #expect(take(&windows).isEmpty)
        let pending = windows.close(3)
        #expect(pending.count == 1)
        pending.first?.fail(CancellationError())
        #expect(take(&windows).isEmpty)
    }
}
