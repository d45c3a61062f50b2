#if DEBUG
import HTTPTypes
import Logging
import NIOCore
import NIOEmbedded
import Synchronization
@testable import LBPool

/// The connection fuzz target: a ``ConnectionHandler`` on an `EmbeddedChannel` reading what a
/// server sends, with request streams open. Input: three option bytes, then the server's bytes.
///
/// Byte 0, bit by bit from the lowest: 0: the harness sends a valid SETTINGS frame before the
/// input; 1–2: how many requests to open (0–3), as soon as the connection is ready; 3: the first
/// request has a 70 000-byte body (more than the default window, so part of it waits for
/// WINDOW_UPDATE); 4: the requests are HEAD; 5: their deadline has passed already; 6: keepalive
/// PINGs are on; 7: the clock moves on a minute after the input, so that timers fire.
/// Byte 1: bits 0–4: the input is read in pieces of 1, 2, …, n bytes (0: in one read); 5: the
/// requests open one per read rather than all at once; 6: the first request is cancelled by
/// its task after the first read; 7: the pool drains the connection after the first read.
/// Byte 2: bits 0–1: the requests' fields beyond the pseudo-headers (none; `user-agent` and
/// `accept`; a request id the encoder keeps out of its table and an `authorization` it never
/// indexes; a 3000-byte `cookie`); 2: the first request has a 20 000-byte field, so its header
/// block takes CONTINUATION frames; 3: after each read, the reader takes up to 2 KiB of what
/// arrived of each response body, which opens the stream's window again; 4: every request has
/// the same path, so the encoder may reuse the bytes of the last pseudo-headers.
///
/// Besides not crashing, trapping or hanging:
/// - what the client writes must be valid HTTP/2 (``ClientFrameChecker``), its request header
///   blocks must decode to the requests;
/// - the handler must keep its contract with the pool: `draining` at most once and `closed`
///   exactly once, in that order, `ready` before both if at all; no stream is left once the
///   channel is closed.
enum ConnectionFuzzEntry {
    struct Options {
        var settingsFirst: Bool
        var requests: Int
        var bodyOnFirst: Bool
        var headRequests: Bool
        var deadlinesPassed: Bool
        var keepalive: Bool
        var advanceClock: Bool
        var pieceLength: Int
        var oneRequestPerRead: Bool
        var cancelFirst: Bool
        var drainAfterFirstRead: Bool
        var fieldSet: Int
        var largeFieldOnFirst: Bool
        var readerConsumes: Bool
        var samePath: Bool

        init(_ first: UInt8, _ second: UInt8, _ third: UInt8) {
            settingsFirst = first & 0x01 != 0
            requests = Int(first >> 1 & 0x03)
            bodyOnFirst = first & 0x08 != 0
            headRequests = first & 0x10 != 0
            deadlinesPassed = first & 0x20 != 0
            keepalive = first & 0x40 != 0
            advanceClock = first & 0x80 != 0
            pieceLength = Int(second & 0x1F)
            oneRequestPerRead = second & 0x20 != 0
            cancelFirst = second & 0x40 != 0
            drainAfterFirstRead = second & 0x80 != 0
            fieldSet = Int(third & 0x03)
            largeFieldOnFirst = third & 0x04 != 0
            readerConsumes = third & 0x08 != 0
            samePath = third & 0x10 != 0
        }

        /// The fields of request number `index` (beyond the pseudo-headers).
        func fields(request index: Int) -> HTTPFields {
            var fields = HTTPFields()
            switch fieldSet {
            case 1:
                fields[.userAgent] = "lbpool-fuzz/1.0"
                fields[.accept] = "application/json"
            case 2:
                var id = HTTPField(name: HTTPField.Name("x-request-id")!, value: "req-\(index)-\(index * 7919)")
                id.indexingStrategy = .avoid
                var secret = HTTPField(name: .authorization, value: "Bearer s\(index)")
                secret.indexingStrategy = .disallow
                fields.append(id)
                fields.append(secret)
            case 3:
                fields[.cookie] = "session=" + String(repeating: "c", count: 3000)
            default:
                break
            }
            if index == 0, largeFieldOnFirst {
                fields[HTTPField.Name("x-large")!] = String(repeating: "L", count: 20_000)
            }
            return fields
        }
    }

    static let bodyLength = 70_000

    // MARK: - The handler's construction: the only code here that knows its initializer and
    // `openStream`, both still changing on main.

    /// The connection handler under test, as ``Subconnection`` builds one, but with small
    /// windows so that inputs of a few KiB reach flow control.
    static func makeHandler(delegate: EventRecorder, keepalive: Bool) -> ConnectionHandler {
        ConnectionHandler(
            id: SubconnectionID(1), address: ResolvedAddress(ip: "127.0.0.1", port: 80),
            shared: SubconnectionShared(streamCap: nil), delegate: delegate, requiresALPN: false,
            readyTimeout: .seconds(10), drainTimeout: .seconds(20),
            keepalive: keepalive ? .init(interval: .seconds(10), timeout: .seconds(5), permitWithoutStreams: true) : nil,
            streamWindow: 4096, connectionWindowTarget: 131_072,
            logger: Logger(label: "fuzz") { _ in RenderingLogHandler() })
    }

    /// Opens one request stream; returns its id, or `nil` if the handler refused it.
    static func openRequest(
        on handler: ConnectionHandler, _ response: ResponseStream, head: Bool, path: String, fields: HTTPFields,
        body: ByteBuffer?, deadline: NIODeadline
    ) -> HTTP2StreamNumber? {
        let request = HTTPRequest(method: head ? .head : .get, scheme: nil, authority: nil, path: path, headerFields: fields)
        let requestHead = RequestHead(request, scheme: "http", authority: "fuzz", bodyLength: body?.readableBytes)
        return handler.openStream(response, head: requestHead, body: body, endStream: true, deadline: deadline)?.streamID
    }

    // MARK: - The run

    static func run(_ input: UnsafeRawBufferPointer) throws(FuzzFinding) {
        guard input.count >= 3 else { return }
        let options = Options(input[0], input[1], input[2])
        var server = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: input[3...]))
        var connection = Connection(options: options)
        try connection.start()
        if options.settingsFirst {
            var settings = ByteBuffer()
            settings.writeHTTP2Settings([])
            try connection.read(settings)
        }
        try connection.openRequests()
        var nextLength = 1
        var firstRead = true
        while server.readableBytes > 0, connection.channel.isActive {
            let length = options.pieceLength == 0 ? server.readableBytes : min(nextLength, server.readableBytes)
            nextLength = nextLength % max(options.pieceLength, 1) + 1
            try connection.read(server.readSlice(length: length) ?? ByteBuffer())
            if firstRead {
                firstRead = false
                try connection.afterFirstRead()
            }
            if options.readerConsumes { try connection.consumeBodies() }
            try connection.openRequests()
        }
        if options.advanceClock {
            connection.channel.embeddedEventLoop.advanceTime(by: .seconds(60))
            try connection.collectOutput()
        }
        try connection.finish()
    }

    /// One connection under test and what the harness knows about it.
    struct Connection {
        let options: Options
        let events = EventRecorder()
        let handler: ConnectionHandler
        let channel: EmbeddedChannel
        var checker = ClientFrameChecker()
        var responses: [ResponseStream] = []
        /// Body bytes of each stream the reader took.
        var consumed: [HTTP2StreamNumber: Int] = [:]
        /// The server's SETTINGS_MAX_FRAME_SIZE, as far as the bytes read so far say: read by
        /// a parser of its own, since the handler's is private.
        var serverFrames = HTTP2FrameParser()
        var serverFramesFailed = false

        init(options: Options) {
            self.options = options
            handler = ConnectionFuzzEntry.makeHandler(delegate: events, keepalive: options.keepalive)
            channel = EmbeddedChannel(handler: handler)
        }

        mutating func start() throws(FuzzFinding) {
            do {
                try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 80)).wait()
            } catch {
                throw FuzzFinding("connecting the embedded channel failed: \(error)")
            }
            try collectOutput()
        }

        /// One read of server bytes, and whatever the event loop does after it.
        mutating func read(_ bytes: ByteBuffer) throws(FuzzFinding) {
            trackServerSettings(bytes)
            do {
                try channel.writeInbound(bytes)
            } catch {
                throw FuzzFinding("the handler let an error through the pipeline: \(error)")
            }
            channel.embeddedEventLoop.run()
            try collectOutput()
        }

        mutating func trackServerSettings(_ bytes: ByteBuffer) {
            guard !serverFramesFailed else { return }
            serverFrames.append(bytes)
            do {
                while let frame = try serverFrames.next() {
                    guard case .settings(let settings) = frame else { continue }
                    for setting in settings where setting.identifier == HTTP2SettingID.maxFrameSize {
                        checker.allowMaxFrameSize(Int(setting.value))
                    }
                }
            } catch {
                serverFramesFailed = true
            }
        }

        /// Opens the requests the options ask for (or the next one), once the connection takes
        /// them.
        mutating func openRequests() throws(FuzzFinding) {
            let limit = options.oneRequestPerRead ? min(responses.count + 1, options.requests) : options.requests
            while responses.count < limit, handler.acceptsStreams {
                let response = ResponseStream()
                let path = options.samePath ? "/" : "/fuzz/\(responses.count)"
                let body = responses.isEmpty && options.bodyOnFirst ? ByteBuffer(repeating: 0x62, count: ConnectionFuzzEntry.bodyLength) : nil
                let deadline: NIODeadline = options.deadlinesPassed ? .uptimeNanoseconds(0) : .now() + .hours(1)
                let fields = options.fields(request: responses.count)
                responses.append(response)
                guard
                    let id = ConnectionFuzzEntry.openRequest(
                        on: handler, response, head: options.headRequests, path: path, fields: fields, body: body, deadline: deadline)
                else {
                    throw FuzzFinding("a connection that accepts streams refused one")
                }
                checker.expect(
                    stream: id, method: options.headRequests ? "HEAD" : "GET", path: path,
                    fields: fields.map { ($0.name.canonicalName, $0.value) }, bodyLength: body?.readableBytes ?? 0)
            }
            channel.embeddedEventLoop.run()
            try collectOutput()
        }

        mutating func afterFirstRead() throws(FuzzFinding) {
            // As a task does when it is cancelled: the reset is queued on the event loop.
            if options.cancelFirst { responses.first?.cancel() }
            if options.drainAfterFirstRead { handler.drain(.poolShutdown) }
            channel.embeddedEventLoop.run()
            try collectOutput()
        }

        /// As a reader does: takes up to 2 KiB of what arrived of each response body.
        mutating func consumeBodies() throws(FuzzFinding) {
            for (id, stream) in handler.streams where stream.machine.response != .awaitingHead {
                let bytes = min(2048, stream.machine.receivedLength - consumed[id, default: 0])
                guard bytes > 0 else { continue }
                consumed[id, default: 0] += bytes
                handler.bodyConsumed(bytes, on: id)
            }
            channel.embeddedEventLoop.run()
            try collectOutput()
        }

        mutating func collectOutput() throws(FuzzFinding) {
            checker.allowMaxFrameSize(handler.peerMaxFrameSize)
            while true {
                let bytes: ByteBuffer?
                do {
                    bytes = try channel.readOutbound(as: ByteBuffer.self)
                } catch {
                    throw FuzzFinding("the handler wrote something other than bytes: \(error)")
                }
                guard let bytes else { return }
                try checker.check(bytes)
            }
        }

        /// The peer closes what is still open; then the contract with the pool is checked.
        mutating func finish() throws(FuzzFinding) {
            channel.close(promise: nil)
            channel.embeddedEventLoop.run()
            try collectOutput()
            _ = try? channel.finish(acceptAlreadyClosed: true)
            guard handler.streams.isEmpty else {
                throw FuzzFinding("streams \(handler.streams.keys.sorted()) left after the channel closed")
            }
            try events.checkContract()
        }
    }
}

/// Records a handler's events and checks them against what ``SubconnectionEvent`` promises.
final class EventRecorder: SubconnectionDelegate {
    // Only the embedded event loop's thread reports events and reads them; the lock is for the
    // compiler's sake, which cannot see that.
    private let events = Mutex<[SubconnectionEvent]>([])

    func subconnection(_ id: SubconnectionID, address: ResolvedAddress, didReport event: SubconnectionEvent) {
        events.withLock { $0.append(event) }
    }

    /// `draining` at most once and `closed` exactly once, in that order; `ready` before both
    /// if at all; `closed` says whether `ready` came.
    func checkContract() throws(FuzzFinding) {
        let events = events.withLock { $0 }
        var sawReady = false
        var sawDraining = false
        var sawClosed = false
        for event in events {
            switch event {
            case .ready:
                guard !sawReady, !sawDraining, !sawClosed else { throw FuzzFinding("ready out of order in \(events)") }
                sawReady = true
            case .draining:
                guard !sawDraining, !sawClosed else { throw FuzzFinding("draining out of order in \(events)") }
                sawDraining = true
            case .closed(_, let wasReady):
                guard !sawClosed else { throw FuzzFinding("closed twice in \(events)") }
                guard wasReady == sawReady else { throw FuzzFinding("closed says wasReady \(wasReady) in \(events)") }
                sawClosed = true
            }
        }
        guard sawClosed else { throw FuzzFinding("no closed event after the channel closed: \(events)") }
    }
}

/// Formats every log message and its metadata, then drops it: the log statements run as with
/// logging on, without output.
struct RenderingLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var text = event.message.description
        for (key, value) in event.metadata ?? [:] { text += " \(key)=\(value)" }
        precondition(!text.isEmpty)
    }
}
#endif
