import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import LBPool

/// The connection handler's side of HTTP/2 on an in-memory channel: the bytes it writes, given
/// the frames a server sends. (Requests against real servers are in the integration tests.)
@Suite struct ConnectionHandlerProtocolTests {
    final class Events: SubconnectionDelegate {
        let events = Mutex<[SubconnectionEvent]>([])
        func subconnection(_ id: SubconnectionID, address: ResolvedAddress, didReport event: SubconnectionEvent) {
            events.withLock { $0.append(event) }
        }
        var all: [SubconnectionEvent] { events.withLock { $0 } }
    }

    /// An active channel with the handler, the client's preface already read off it.
    func connected() throws -> (EmbeddedChannel, Events) {
        let (channel, events, _) = try connectedHandler()
        return (channel, events)
    }

    func connectedHandler(limits: HTTP2ClientLimits = HTTP2ClientLimits()) throws -> (EmbeddedChannel, Events, ConnectionHandler) {
        let events = Events()
        let handler = ConnectionHandler(
            id: SubconnectionID(1), address: ResolvedAddress(ip: "127.0.0.1", port: 80), shared: SubconnectionShared(streamCap: nil),
            delegate: events, requiresALPN: false, readyTimeout: .seconds(10), drainTimeout: .seconds(10), keepalive: nil,
            streamWindow: 1 << 20, connectionWindowTarget: 4 << 20, limits: limits, logger: Logger(label: "test"))
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 80)).wait()
        var written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(written.readString(length: 24) == "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        let frames = try frames(written)
        guard case .settings(let settings) = frames.first else {
            Issue.record("no SETTINGS after the preface: \(frames)")
            return (channel, events, handler)
        }
        #expect(settings.contains { $0.identifier == HTTP2SettingID.enablePush && $0.value == 0 })
        #expect(settings.contains { $0.identifier == HTTP2SettingID.initialWindowSize && $0.value == 1 << 20 })
        guard case .windowUpdate(0, let increment) = frames.last else {
            Issue.record("no connection WINDOW_UPDATE after SETTINGS: \(frames)")
            return (channel, events, handler)
        }
        #expect(Int(increment) == (4 << 20) - 65_535)
        return (channel, events, handler)
    }

    /// Reads the client's frames from bytes it wrote (after the preface).
    func frames(_ bytes: ByteBuffer) throws -> [HTTP2InboundFrame] {
        var parser = HTTP2FrameParser()
        parser.append(bytes)
        var frames: [HTTP2InboundFrame] = []
        while let frame = try parser.next() { frames.append(frame) }
        return frames
    }

    func written(_ channel: EmbeddedChannel) throws -> [HTTP2InboundFrame] {
        var all: [HTTP2InboundFrame] = []
        while let bytes = try channel.readOutbound(as: ByteBuffer.self) { all += try frames(bytes) }
        return all
    }

    func send(_ channel: EmbeddedChannel, _ write: (inout ByteBuffer) -> Void) throws {
        var buffer = ByteBuffer()
        write(&buffer)
        try channel.writeInbound(buffer)
        channel.embeddedEventLoop.run()
    }

    @Test func serverSettingsAreAcknowledgedAndMakeTheConnectionReady() throws {
        let (channel, events) = try connected()
        try send(channel) { $0.writeHTTP2Settings([(HTTP2SettingID.maxConcurrentStreams, 50)]) }
        let frames = try written(channel)
        #expect(frames.contains { if case .settingsAck = $0 { true } else { false } }, "\(frames)")
        #expect(events.all == [.ready])
    }

    @Test func aPingIsAnsweredWithTheSameData() throws {
        let (channel, _) = try connected()
        try send(channel) {
            $0.writeHTTP2Settings([])
            $0.writeHTTP2Ping(opaque: 0xDEAD_BEEF, ack: false)
        }
        let frames = try written(channel)
        #expect(frames.contains { if case .ping(0xDEAD_BEEF, ack: true) = $0 { true } else { false } }, "\(frames)")
    }

    @Test func aGoAwayThatRaisesTheLastStreamIDIsAProtocolError() throws {
        let (channel, events) = try connected()
        try send(channel) {
            $0.writeHTTP2Settings([])
            $0.writeHTTP2GoAway(lastStreamID: 5, code: HTTP2Code.noError, debugData: "")
            $0.writeHTTP2GoAway(lastStreamID: 7, code: HTTP2Code.noError, debugData: "")
        }
        let frames = try written(channel)
        #expect(frames.contains { if case .goAway(0, HTTP2Code.protocolError, _) = $0 { true } else { false } }, "\(frames)")
        #expect(!channel.isActive)
        #expect(events.all.contains { if case .closed = $0 { true } else { false } })
    }

    @Test func dataOnAStreamTheClientNeverOpenedIsAProtocolError() throws {
        let (channel, _) = try connected()
        try send(channel) { $0.writeHTTP2Settings([]) }
        _ = try written(channel)
        try send(channel) {
            $0.writeHTTP2FrameHeader(length: 1, type: HTTP2FrameType.data, flags: 0, stream: 1); $0.writeInteger(UInt8(0))
        }
        let frames = try written(channel)
        #expect(frames.contains { if case .goAway(0, HTTP2Code.protocolError, _) = $0 { true } else { false } }, "\(frames)")
        #expect(!channel.isActive)
    }

    @Test func dataOfAStreamAlreadyResetStillOpensTheConnectionWindowAgain() throws {
        let (channel, _, handler) = try connectedHandler()
        try send(channel) { $0.writeHTTP2Settings([]) }
        let response = ResponseStream()
        let head = RequestHead(.init(method: .get, scheme: nil, authority: nil, path: "/"), scheme: "http", authority: "api", bodyLength: nil)
        #expect(handler.openStream(response, head: head, body: nil, endStream: true, deadline: .now() + .seconds(10)) != nil)
        handler.resetStream(1)
        channel.embeddedEventLoop.run()
        let opened = try written(channel)
        #expect(opened.contains { if case .rstStream(1, HTTP2Code.cancel) = $0 { true } else { false } }, "\(opened)")
        // The server had sent 2.5 MiB before it saw the reset: more than half the 4 MiB window.
        let chunk = [UInt8](repeating: 0x61, count: 16_384)
        for _ in 0..<160 {
            try send(channel) {
                $0.writeHTTP2FrameHeader(length: chunk.count, type: HTTP2FrameType.data, flags: 0, stream: 1)
                $0.writeBytes(chunk)
            }
        }
        let frames = try written(channel)
        let increments = frames.compactMap { frame -> UInt32? in
            if case .windowUpdate(0, let increment) = frame { return increment }
            return nil
        }
        #expect(increments.count == 1, "\(frames)")
        #expect(increments.first.map { Int($0) > 2 << 20 } == true, "\(increments)")
        #expect(channel.isActive)
    }

    @Test func anHTTP1AnswerClosesWithAMessageThatSaysSo() throws {
        let (channel, events) = try connected()
        try send(channel) { $0.writeString("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") }
        #expect(!channel.isActive)
        let closed = events.all.compactMap { event -> ConnectionCloseReason? in
            if case .closed(let reason, _) = event { return reason }
            return nil
        }
        #expect("\(closed)".contains("the server answered in HTTP/1 ('HTTP/1.1 400 Bad Request')"), "\(closed)")
    }
}
