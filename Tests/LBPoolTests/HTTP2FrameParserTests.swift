import NIOCore
import Testing
@testable import LBPool

/// Cutting bytes into HTTP/2 frames: what the server's bytes become, and which are refused.
@Suite struct HTTP2FrameParserTests {
    func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32, _ payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeHTTP2FrameHeader(length: payload.count, type: type, flags: flags, stream: stream)
        buffer.writeBytes(payload)
        return buffer
    }

    func parse(_ buffers: ByteBuffer...) throws(HTTP2ConnectionError) -> [HTTP2InboundFrame] {
        var parser = HTTP2FrameParser()
        var frames: [HTTP2InboundFrame] = []
        for buffer in buffers {
            parser.append(buffer)
            while let frame = try parser.next() { frames.append(frame) }
        }
        return frames
    }

    func error(_ buffers: ByteBuffer...) -> HTTP2ConnectionError? {
        var parser = HTTP2FrameParser()
        do {
            for buffer in buffers {
                parser.append(buffer)
                while try parser.next() != nil {}
            }
            return nil
        } catch {
            return error
        }
    }

    @Test func framesSplitAcrossReadsComeOutWhole() throws {
        var bytes = frame(type: HTTP2FrameType.data, flags: HTTP2FrameType.endStream, stream: 3, Array("hello".utf8))
        bytes.writeImmutableBuffer(frame(type: HTTP2FrameType.ping, stream: 0, [0, 0, 0, 0, 0, 0, 0, 7]))
        // Every split point, one byte at a time and in two pieces.
        for split in 1..<bytes.readableBytes {
            let first = bytes.getSlice(at: 0, length: split)!
            let second = bytes.getSlice(at: split, length: bytes.readableBytes - split)!
            let frames = try parse(first, second)
            #expect(frames.count == 2, "split at \(split)")
            guard case .data(3, let data, true, 5) = frames.first else {
                Issue.record("split at \(split): \(frames)")
                continue
            }
            #expect(String(buffer: data) == "hello")
            guard case .ping(7, false) = frames.last else {
                Issue.record("split at \(split): \(frames)")
                continue
            }
        }
    }

    @Test func paddingIsRemovedAndStillCountsForFlowControl() throws {
        // Pad length 3, "abc", three bytes of padding.
        let frames = try parse(frame(type: HTTP2FrameType.data, flags: HTTP2FrameType.padded, stream: 1, [3, 97, 98, 99, 0, 0, 0]))
        guard case .data(1, let data, false, 7) = frames.first else {
            Issue.record("\(frames)")
            return
        }
        #expect(String(buffer: data) == "abc")
        #expect(error(frame(type: HTTP2FrameType.data, flags: HTTP2FrameType.padded, stream: 1, [9, 97]))?.code == HTTP2Code.protocolError)
    }

    @Test func headersWithContinuationsAreJoinedAndPriorityIsSkipped() throws {
        // HEADERS with PRIORITY (5 bytes) and END_STREAM, the block in three pieces.
        let headers = frame(type: HTTP2FrameType.headers, flags: HTTP2FrameType.endStream | HTTP2FrameType.priorityFlag, stream: 5, [0, 0, 0, 0, 16, 1, 2])
        let middle = frame(type: HTTP2FrameType.continuation, stream: 5, [3, 4])
        let last = frame(type: HTTP2FrameType.continuation, flags: HTTP2FrameType.endHeaders, stream: 5, [5])
        let frames = try parse(headers, middle, last)
        #expect(frames.count == 1)
        guard case .headers(5, let block, true) = frames.first else {
            Issue.record("\(frames)")
            return
        }
        #expect(Array(block.readableBytesView) == [1, 2, 3, 4, 5])
    }

    @Test func anotherFrameBetweenHeadersAndContinuationIsAConnectionError() {
        let headers = frame(type: HTTP2FrameType.headers, stream: 5, [1])
        let ping = frame(type: HTTP2FrameType.ping, stream: 0, [0, 0, 0, 0, 0, 0, 0, 0])
        let failure = error(headers, ping)
        #expect(failure?.code == HTTP2Code.protocolError)
        #expect(failure?.message.contains("CONTINUATION of stream 5") == true, "\(String(describing: failure))")
        #expect(error(frame(type: HTTP2FrameType.continuation, flags: HTTP2FrameType.endHeaders, stream: 5, [1]))?.code == HTTP2Code.protocolError)
    }

    @Test func settingsPingGoAwayWindowUpdateAndResetAreRead() throws {
        let frames = try parse(
            frame(type: HTTP2FrameType.settings, stream: 0, [0, 3, 0, 0, 0, 100, 0, 4, 0, 1, 0, 0]),
            frame(type: HTTP2FrameType.settings, flags: HTTP2FrameType.ack, stream: 0, []),
            frame(type: HTTP2FrameType.goAway, stream: 0, [0, 0, 0, 9, 0, 0, 0, 0] + Array("bye".utf8)),
            frame(type: HTTP2FrameType.windowUpdate, stream: 7, [0x80, 0, 1, 0]),
            frame(type: HTTP2FrameType.rstStream, stream: 7, [0, 0, 0, 7]),
            frame(type: HTTP2FrameType.priority, stream: 7, [0, 0, 0, 0, 1]),
            frame(type: 0xFA, stream: 0, [1, 2, 3])
        )
        #expect(frames.count == 5, "PRIORITY and unknown types are not reported")
        guard case .settings(let settings) = frames[0] else { Issue.record("\(frames[0])"); return }
        #expect(settings.map(\.identifier) == [HTTP2SettingID.maxConcurrentStreams, HTTP2SettingID.initialWindowSize])
        #expect(settings.map(\.value) == [100, 65_536])
        guard case .settingsAck = frames[1] else { Issue.record("\(frames[1])"); return }
        guard case .goAway(9, .noError, let debug) = frames[2] else { Issue.record("\(frames[2])"); return }
        #expect(String(buffer: debug) == "bye")
        guard case .windowUpdate(7, 256) = frames[3] else { Issue.record("\(frames[3])"); return }
        guard case .rstStream(7, HTTP2Code.refusedStream) = frames[4] else { Issue.record("\(frames[4])"); return }
    }

    @Test func malformedFramesAreConnectionErrorsNamingTheProblem() {
        let cases: [(ByteBuffer, HTTP2Code, String)] = [
            (frame(type: HTTP2FrameType.ping, stream: 0, [1, 2, 3]), HTTP2Code.frameSizeError, "PING of 3 bytes"),
            (frame(type: HTTP2FrameType.ping, stream: 1, [0, 0, 0, 0, 0, 0, 0, 0]), HTTP2Code.protocolError, "PING on stream 1"),
            (frame(type: HTTP2FrameType.settings, stream: 0, [0, 3, 0]), HTTP2Code.frameSizeError, "not a multiple of 6"),
            (frame(type: HTTP2FrameType.data, stream: 0, [1]), HTTP2Code.protocolError, "DATA on stream 0"),
            (frame(type: HTTP2FrameType.pushPromise, stream: 1, [0, 0, 0, 2]), HTTP2Code.protocolError, "PUSH_PROMISE"),
            (frame(type: HTTP2FrameType.rstStream, stream: 1, [0, 0]), HTTP2Code.frameSizeError, "RST_STREAM of 2 bytes"),
        ]
        for (bytes, code, message) in cases {
            let failure = error(bytes)
            #expect(failure?.code == code, "\(message)")
            #expect(failure?.message.contains(message) == true, "\(String(describing: failure))")
        }
        // A frame larger than SETTINGS_MAX_FRAME_SIZE is refused from its header alone.
        var header = ByteBuffer()
        header.writeHTTP2FrameHeader(length: 16_385, type: HTTP2FrameType.data, flags: 0, stream: 1)
        #expect(error(header)?.code == HTTP2Code.frameSizeError)
    }

    @Test func aLargeHeaderBlockIsWrittenAsHeadersAndContinuationsAndReadBack() throws {
        var out = ByteBuffer()
        let block = (0..<40_000).map { UInt8(truncatingIfNeeded: $0) }
        out.writeHTTP2Headers(stream: 1, endStream: true, maxFrameSize: 16_384) { (buffer: inout ByteBuffer) in
            buffer.writeBytes(block)
        }
        // 40 000 bytes: HEADERS of 16 384, CONTINUATION of 16 384, CONTINUATION of 7 232.
        #expect(out.readableBytes == 40_000 + 3 * 9)
        let frames = try parse(out)
        guard case .headers(1, let read, true) = frames.first, frames.count == 1 else {
            Issue.record("\(frames)")
            return
        }
        #expect(Array(read.readableBytesView) == block)
    }
}

/// What the parser keeps between reads, and its limits.
@Suite struct HTTP2FrameParserBufferingTests {
    @Test func aFrameCutByReadsIsTheOnlyCopyAndWholeFramesShareTheReadStorage() throws {
        var parser = HTTP2FrameParser()
        // Two reads: a whole DATA frame and the first half of the next, then the rest.
        var first = ByteBuffer()
        first.writeHTTP2FrameHeader(length: 4, type: HTTP2FrameType.data, flags: 0, stream: 1)
        first.writeString("abcd")
        first.writeHTTP2FrameHeader(length: 6, type: HTTP2FrameType.data, flags: 0, stream: 1)
        first.writeString("efg")
        var second = ByteBuffer()
        second.writeString("hij")
        second.writeHTTP2FrameHeader(length: 2, type: HTTP2FrameType.data, flags: 0, stream: 1)
        second.writeString("kl")
        parser.append(first)
        guard case .data(1, let whole, false, 4) = try parser.next() else { Issue.record("first frame"); return }
        #expect(String(buffer: whole) == "abcd")
        #expect(
            whole.withUnsafeReadableBytes { $0.baseAddress } == first.withUnsafeReadableBytes { $0.baseAddress.map { $0 + 9 } },
            "a whole frame's payload is a slice of the read, not a copy")
        #expect(try parser.next() == nil)
        parser.append(second)
        guard case .data(1, let joined, false, 6) = try parser.next() else { Issue.record("joined frame"); return }
        #expect(String(buffer: joined) == "efghij")
        guard case .data(1, let last, false, 2) = try parser.next() else { Issue.record("last frame"); return }
        #expect(String(buffer: last) == "kl")
        #expect(
            last.withUnsafeReadableBytes { $0.baseAddress } == second.withUnsafeReadableBytes { $0.baseAddress.map { $0 + 12 } },
            "after a joined frame, the rest of the read is sliced again")
        #expect(try parser.next() == nil)
    }

    @Test func aHeaderBlockInMoreContinuationFramesThanTheCapIsAFlood() {
        var parser = HTTP2FrameParser(maxContinuationFrames: 4)
        var bytes = ByteBuffer()
        bytes.writeHTTP2FrameHeader(length: 1, type: HTTP2FrameType.headers, flags: 0, stream: 1)
        bytes.writeInteger(UInt8(0x88))
        for _ in 0..<5 { bytes.writeHTTP2FrameHeader(length: 0, type: HTTP2FrameType.continuation, flags: 0, stream: 1) }
        parser.append(bytes)
        #expect(throws: HTTP2ConnectionError.self) { while try parser.next() != nil {} }
        do {
            var again = HTTP2FrameParser(maxContinuationFrames: 4)
            again.append(bytes)
            while try again.next() != nil {}
        } catch {
            #expect(error.code == .enhanceYourCalm)
            #expect(error.message.contains("more than 4 CONTINUATION frames"), "\(error)")
        }
    }

    @Test func droppedFramesAreCounted() throws {
        var parser = HTTP2FrameParser()
        var bytes = ByteBuffer()
        bytes.writeHTTP2FrameHeader(length: 5, type: HTTP2FrameType.priority, flags: 0, stream: 1)
        bytes.writeRepeatingByte(0, count: 5)
        bytes.writeHTTP2FrameHeader(length: 0, type: 0xF0, flags: 0, stream: 0)
        parser.append(bytes)
        #expect(try parser.next() == nil)
        #expect(parser.takeIgnoredFrames() == 2)
        #expect(parser.takeIgnoredFrames() == 0)
    }
}
