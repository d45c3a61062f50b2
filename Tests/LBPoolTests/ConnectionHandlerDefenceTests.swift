import HTTPTypes
import Logging
import NIOCore
import NIOEmbedded
import NIOHPACK
import Testing
@testable import LBPool

/// The connection handler against a server that breaks HTTP/2's rules or floods it, on an
/// in-memory channel: what it answers on the wire, and what the request sees.
@Suite struct ConnectionHandlerDefenceTests {
    let base = ConnectionHandlerProtocolTests()

    /// A ready connection (the server's SETTINGS read, its answers drained).
    func ready(limits: HTTP2ClientLimits = HTTP2ClientLimits()) throws -> (EmbeddedChannel, ConnectionHandlerProtocolTests.Events, ConnectionHandler) {
        let (channel, events, handler) = try base.connectedHandler(limits: limits)
        try base.send(channel) { $0.writeHTTP2Settings([]) }
        _ = try base.written(channel)
        return (channel, events, handler)
    }

    func get(_ handler: ConnectionHandler, _ channel: EmbeddedChannel) throws -> ResponseStream {
        let response = ResponseStream()
        let head = RequestHead(.init(method: .get, scheme: nil, authority: nil, path: "/"), scheme: "http", authority: "api", bodyLength: nil)
        #expect(handler.openStream(response, head: head, body: nil, endStream: true, deadline: .now() + .seconds(10)) != nil)
        channel.embeddedEventLoop.run()
        _ = try base.written(channel)
        return response
    }

    func headers(_ fields: [(String, String)], stream: UInt32, endStream: Bool, into buffer: inout ByteBuffer) {
        var encoder = HPACKEncoder(allocator: ByteBufferAllocator())
        var block = ByteBuffer()
        try? encoder.encode(headers: HPACKHeaders(fields), to: &block)
        buffer.writeHTTP2FrameHeader(
            length: block.readableBytes, type: HTTP2FrameType.headers,
            flags: HTTP2FrameType.endHeaders | (endStream ? HTTP2FrameType.endStream : 0), stream: stream)
        buffer.writeBuffer(&block)
    }

    func data(_ text: String, stream: UInt32, endStream: Bool, into buffer: inout ByteBuffer) {
        buffer.writeHTTP2FrameHeader(length: text.utf8.count, type: HTTP2FrameType.data, flags: endStream ? HTTP2FrameType.endStream : 0, stream: stream)
        buffer.writeString(text)
    }

    func goAwayCode(_ frames: [HTTP2InboundFrame]) -> HTTP2Code? {
        for frame in frames { if case .goAway(_, let code, _) = frame { return code } }
        return nil
    }

    func resets(_ frames: [HTTP2InboundFrame]) -> [(UInt32, HTTP2Code)] {
        frames.compactMap { if case .rstStream(let stream, let code) = $0 { (stream, code) } else { nil } }
    }

    @Test(arguments: [UInt32(1), 2])
    func settingsEnablePushFromAServerIsAConnectionError(value: UInt32) throws {
        let (channel, events, _) = try base.connectedHandler()
        try base.send(channel) { $0.writeHTTP2Settings([(HTTP2SettingID.enablePush, value)]) }
        let frames = try base.written(channel)
        #expect(goAwayCode(frames) == .protocolError, "\(frames)")
        #expect(!frames.contains { if case .settingsAck = $0 { true } else { false } }, "not acknowledged")
        #expect(!channel.isActive)
        #expect(events.all.contains { if case .closed(.protocolViolation(.protocolError, _), _) = $0 { true } else { false } }, "\(events.all)")
    }

    @Test func dataOnAnEvenStreamAndWindowUpdateOnAnIdleOneAreConnectionErrors() throws {
        for write in [
            { (buffer: inout ByteBuffer) in
                buffer.writeHTTP2FrameHeader(length: 1, type: HTTP2FrameType.data, flags: 0, stream: 2); buffer.writeInteger(UInt8(0))
            },
            { (buffer: inout ByteBuffer) in buffer.writeHTTP2WindowUpdate(stream: 5, increment: 10) },
        ] {
            let (channel, _, handler) = try ready()
            _ = try get(handler, channel)
            try base.send(channel, write)
            let frames = try base.written(channel)
            #expect(goAwayCode(frames) == .protocolError, "\(frames)")
            #expect(!channel.isActive)
        }
    }

    @Test func dataOnAStreamClosedNormallyGetsStreamClosedAndTheConnectionLives() throws {
        let (channel, _, handler) = try ready()
        let response = try get(handler, channel)
        try base.send(channel) { headers([(":status", "200")], stream: 1, endStream: true, into: &$0) }
        _ = try base.written(channel)
        try base.send(channel) { data("late", stream: 1, endStream: false, into: &$0) }
        let frames = try base.written(channel)
        #expect(resets(frames).map(\.1) == [.streamClosed], "\(frames)")
        #expect(channel.isActive)
        _ = response
    }

    @Test func dataOnAStreamTheClientResetIsIgnored() throws {
        let (channel, _, handler) = try ready()
        _ = try get(handler, channel)
        handler.resetStream(1)
        channel.embeddedEventLoop.run()
        _ = try base.written(channel)
        try base.send(channel) { data("in flight", stream: 1, endStream: false, into: &$0) }
        let frames = try base.written(channel)
        #expect(resets(frames).isEmpty, "\(frames)")
        #expect(channel.isActive)
    }

    @Test func windowUpdateOfZeroOnAStreamIsAStreamError() async throws {
        let (channel, _, handler) = try ready()
        let response = try get(handler, channel)
        try base.send(channel) { $0.writeHTTP2WindowUpdate(stream: 1, increment: 0) }
        let frames = try base.written(channel)
        #expect(resets(frames).map(\.1) == [.protocolError], "\(frames)")
        #expect(channel.isActive)
        await #expect(throws: ResponseStream.HeadFailure.self) { try await response.head() }
    }

    @Test func trailersReachTheReaderAfterTheBody() async throws {
        let (channel, _, handler) = try ready()
        let response = try get(handler, channel)
        try base.send(channel) {
            headers([(":status", "200")], stream: 1, endStream: false, into: &$0)
            data("body", stream: 1, endStream: false, into: &$0)
        }
        let head = try await response.head()
        #expect(head.status == .ok)
        let body = ResponseBody(response)
        #expect(body.trailers == nil, "none before the server sent them")
        try base.send(channel) { headers([("grpc-status", "0"), ("grpc-message", "ok")], stream: 1, endStream: true, into: &$0) }
        #expect(String(buffer: try await body.collect(upTo: 100)) == "body")
        #expect(body.trailers?[HTTPField.Name("grpc-status")!] == "0")
        #expect(body.trailers?[HTTPField.Name("grpc-message")!] == "ok")
    }

    @Test func resetWithNoErrorAfterTheWholeDeclaredBodyIsASuccess() async throws {
        let (channel, _, handler) = try ready()
        let response = try get(handler, channel)
        try base.send(channel) {
            headers([(":status", "200"), ("content-length", "5")], stream: 1, endStream: false, into: &$0)
            data("whole", stream: 1, endStream: false, into: &$0)
            $0.writeHTTP2RstStream(stream: 1, code: .noError)
        }
        _ = try await response.head()
        #expect(String(buffer: try await ResponseBody(response).collect(upTo: 100)) == "whole")
    }

    @Test func aPingFloodSpendsTheGlitchBudgetAndClosesWithEnhanceYourCalm() throws {
        var limits = HTTP2ClientLimits()
        limits.glitchBurst = 50
        limits.glitchesPerSecond = 0
        let (channel, events, _) = try ready(limits: limits)
        try base.send(channel) { for opaque in 0..<100 { $0.writeHTTP2Ping(opaque: UInt64(opaque), ack: false) } }
        let frames = try base.written(channel)
        let acks = frames.filter { if case .ping(_, ack: true) = $0 { true } else { false } }
        #expect(acks.count == 50, "answered up to the budget, then closed")
        #expect(goAwayCode(frames) == .enhanceYourCalm, "\(frames.suffix(2))")
        #expect(events.all.contains { if case .closed(.protocolViolation(.enhanceYourCalm, _), _) = $0 { true } else { false } }, "\(events.all)")
    }

    @Test func priorityAndUnknownFramesCountAsGlitches() throws {
        var limits = HTTP2ClientLimits()
        limits.glitchBurst = 10
        limits.glitchesPerSecond = 0
        let (channel, _, _) = try ready(limits: limits)
        try base.send(channel) {
            for _ in 0..<11 {
                $0.writeHTTP2FrameHeader(length: 5, type: HTTP2FrameType.priority, flags: 0, stream: 3)
                $0.writeRepeatingByte(0, count: 5)
            }
        }
        #expect(goAwayCode(try base.written(channel)) == .enhanceYourCalm)
    }

    @Test func aPingAckNobodyAskedForIsAGlitchAndDoesNotEndTheKeepaliveWait() throws {
        var limits = HTTP2ClientLimits()
        limits.glitchBurst = 3
        limits.glitchesPerSecond = 0
        let (channel, _, _) = try ready(limits: limits)
        try base.send(channel) { for _ in 0..<4 { $0.writeHTTP2Ping(opaque: 77, ack: true) } }
        #expect(goAwayCode(try base.written(channel)) == .enhanceYourCalm)
    }

    @Test func whileTheServerDoesNotReadOwedAnswersAreBoundedAndReadsStop() throws {
        var limits = HTTP2ClientLimits()
        limits.maxOwedControlFrames = 100
        limits.glitchBurst = 10_000
        let (channel, _, _) = try ready(limits: limits)
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        try base.send(channel) { for opaque in 0..<10 { $0.writeHTTP2Ping(opaque: UInt64(opaque), ack: false) } }
        let reads = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(reads, position: .first)
        channel.read()
        #expect(reads.count == 1, "a few answers owed do not stop reading")
        try base.send(channel) { for opaque in 0..<60 { $0.writeHTTP2Ping(opaque: UInt64(opaque), ack: false) } }
        #expect(channel.isActive)
        // A read asked for now is held: the server gets no more answers until it reads.
        channel.read()
        #expect(reads.count == 1, "read held while 70 answers are owed and the channel is not writable")
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(reads.count == 2, "released once the server reads again")
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        try base.send(channel) { for opaque in 0..<101 { $0.writeHTTP2Ping(opaque: UInt64(opaque), ack: false) } }
        #expect(goAwayCode(try base.written(channel)) == .enhanceYourCalm)
        #expect(!channel.isActive)
    }

    @Test func aResponseBodyWithoutDataForTheIdleTimeoutFailsItsStream() async throws {
        var limits = HTTP2ClientLimits()
        limits.responseBodyIdleTimeout = .seconds(4)
        let (channel, events, handler) = try base.connectedHandler(limits: limits)
        try base.send(channel) { $0.writeHTTP2Settings([]) }
        #expect(events.all == [.ready])
        _ = try base.written(channel)
        let response = try get(handler, channel)
        try base.send(channel) {
            headers([(":status", "200")], stream: 1, endStream: false, into: &$0)
            data("first", stream: 1, endStream: false, into: &$0)
        }
        _ = try await response.head()
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        try base.send(channel) { data("second", stream: 1, endStream: false, into: &$0) }
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(resets(try base.written(channel)).isEmpty, "DATA within the timeout keeps the body alive")
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(resets(try base.written(channel)).map(\.1) == [.cancel])
        let body = ResponseBody(response)
        do {
            _ = try await body.collect(upTo: 100)
            Issue.record("the idle body ended normally")
        } catch {
            #expect("\(error)".contains("no response body bytes for 4.0 seconds (responseBodyIdleTimeout)"), "\(error)")
        }
    }

    @Test func aStreamPastALimitTheServerLoweredIsNotOpened() async throws {
        let (channel, _, handler) = try ready()
        _ = try get(handler, channel)
        // A server that stops takes new streams away (hypercorn does on a graceful stop).
        try base.send(channel) { $0.writeHTTP2Settings([(HTTP2SettingID.maxConcurrentStreams, 1)]) }
        _ = try base.written(channel)
        let response = ResponseStream()
        let head = RequestHead(.init(method: .get, scheme: nil, authority: nil, path: "/"), scheme: "http", authority: "api", bodyLength: nil)
        #expect(handler.openStream(response, head: head, body: nil, endStream: true, deadline: .now() + .seconds(10)) == nil)
        channel.embeddedEventLoop.run()
        #expect(try base.written(channel).isEmpty, "no HEADERS past the server's limit")
        do {
            _ = try await response.head()
            Issue.record("opened past the limit")
        } catch let failure as ResponseStream.HeadFailure {
            #expect(!failure.headSent, "not sent: the pool sends it again elsewhere")
            #expect("\(failure.underlying)".contains("allows 1 concurrent streams"), "\(failure.underlying)")
        }
    }

    @Test func aRequestLargerThanTheServersHeaderListLimitFailsUnsent() async throws {
        let (channel, _, handler) = try base.connectedHandler()
        try base.send(channel) { $0.writeHTTP2Settings([(HTTP2SettingID.maxHeaderListSize, 200)]) }
        _ = try base.written(channel)
        var request = HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/")
        request.headerFields[HTTPField.Name("x-big")!] = String(repeating: "b", count: 300)
        let head = RequestHead(request, scheme: "http", authority: "api", bodyLength: nil)
        let response = ResponseStream()
        #expect(handler.openStream(response, head: head, body: nil, endStream: true, deadline: .now() + .seconds(10)) == nil)
        channel.embeddedEventLoop.run()
        #expect(try base.written(channel).isEmpty, "nothing sent")
        do {
            _ = try await response.head()
            Issue.record("the request went out")
        } catch let failure as ResponseStream.HeadFailure {
            #expect("\(failure.underlying)".contains("request header list of \(head.headerListSize) bytes"), "\(failure.underlying)")
            #expect("\(failure.underlying)".contains("SETTINGS_MAX_HEADER_LIST_SIZE of 200"), "\(failure.underlying)")
        }
    }
}

/// Counts the reads that reach the channel's head.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var count = 0

    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
}
