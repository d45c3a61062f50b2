import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import Synchronization

/// An in-process HTTP/2 (h2c) server for the cases that need exact control over the wire:
/// GOAWAY with a chosen last-stream-id while streams are open, REFUSED_STREAM, a peer that stops
/// answering. Every complete request is handed to the test through ``requests``; the test
/// decides what the server does with it.
final class TestHTTP2Server: Sendable {
    /// One accepted connection, numbered from 1 in the order of arrival.
    struct Connection: Sendable {
        let number: Int
        let channel: any Channel
        fileprivate let blackhole: NIOLoopBound<Blackhole>

        /// Sends GOAWAY with the given last-stream-id and error code.
        func goAway(lastStreamID: Int, errorCode: HTTP2ErrorCode = .noError) {
            let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: HTTP2StreamID(lastStreamID), errorCode: errorCode, opaqueData: nil))
            channel.writeAndFlush(frame, promise: nil)
        }

        /// From now on, read nothing: PINGs go unanswered, requests unseen.
        func stopAnswering() {
            let blackhole = self.blackhole
            channel.eventLoop.execute { blackhole.value.dropping = true }
        }
    }

    /// A request whose head (and body, if any) arrived.
    struct Request: Sendable {
        let connection: Connection
        let streamID: Int
        let headers: HPACKHeaders
        let body: String
        let stream: any Channel

        var requestID: String { headers.first(name: "x-request-id") ?? "" }

        /// Sends the response head (with `headers` after `:status`), and a body unless `body` is
        /// nil; `end` closes the stream.
        func respond(status: Int = 200, headers: [(String, String)] = [], body: String? = nil, end: Bool = true) {
            let head = HPACKHeaders([(":status", "\(status)")] + headers)
            stream.write(HTTP2Frame.FramePayload.headers(.init(headers: head, endStream: end && body == nil)), promise: nil)
            if let body {
                stream.write(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: body)), endStream: end)), promise: nil)
            }
            stream.flush()
        }

        func sendData(_ text: String, end: Bool) {
            stream.writeAndFlush(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: text)), endStream: end)), promise: nil)
        }

        /// Resets the stream with REFUSED_STREAM: "not processed, try again".
        func refuse() {
            stream.writeAndFlush(HTTP2Frame.FramePayload.rstStream(.refusedStream), promise: nil)
        }
    }

    let requests: AsyncStream<Request>
    let port: Int
    private let channel: any Channel
    private let accepted = AcceptedConnections()

    var connectionsAccepted: Int { accepted.count }

    /// The connection with that number, once accepted.
    func connection(_ number: Int) -> Connection? {
        accepted.connection(number)
    }

    init(host: String = "127.0.0.1", maxConcurrentStreams: Int = 100) async throws {
        let (requests, sink) = AsyncStream.makeStream(of: Request.self)
        self.requests = requests
        let accepted = self.accepted
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let blackhole = Blackhole()
                    let connection = accepted.add { number in
                        Connection(number: number, channel: channel, blackhole: NIOLoopBound(blackhole, eventLoop: channel.eventLoop))
                    }
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(blackhole)
                    var settings = NIOHTTP2Handler.ConnectionConfiguration()
                    settings.initialSettings = [HTTP2Setting(parameter: .maxConcurrentStreams, value: maxConcurrentStreams)]
                    // The server sends what a test tells it to, malformed or not: the client's
                    // checks are what is tested.
                    settings.headerBlockValidation = .disabled
                    settings.contentLengthValidation = .disabled
                    _ = try sync.configureHTTP2Pipeline(
                        mode: .server,
                        connectionConfiguration: settings,
                        streamConfiguration: .init()
                    ) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(RequestCollector(connection: connection, sink: sink))
                        }
                    }
                }
            }
            .bind(host: host, port: 0)
            .get()
        self.port = channel.localAddress?.port ?? 0
    }

    func close() async {
        try? await channel.close()
    }
}

/// The server's connections, numbered from 1.
private final class AcceptedConnections: Sendable {
    private let list = Mutex<[TestHTTP2Server.Connection]>([])

    func add(_ make: (Int) -> TestHTTP2Server.Connection) -> TestHTTP2Server.Connection {
        list.withLock { list in
            let connection = make(list.count + 1)
            list.append(connection)
            return connection
        }
    }

    var count: Int { list.withLock { $0.count } }

    func connection(_ number: Int) -> TestHTTP2Server.Connection? {
        list.withLock { $0.first { $0.number == number } }
    }
}

/// Drops every inbound byte once told to: a peer that has stopped answering.
private final class Blackhole: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    var dropping = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !dropping { context.fireChannelRead(data) }
    }
}

/// Collects one request on a server stream and hands it to the test. A request with an
/// `x-answer-early` header is answered (200, "early") as soon as its head arrives and not
/// handed to the test; its stream then reads nothing more, so it never opens its window for the
/// rest of the body.
private final class RequestCollector: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    let connection: TestHTTP2Server.Connection
    let sink: AsyncStream<TestHTTP2Server.Request>.Continuation
    var headers: HPACKHeaders?
    var body = ByteBuffer()
    var answeredEarly = false

    init(connection: TestHTTP2Server.Connection, sink: AsyncStream<TestHTTP2Server.Request>.Continuation) {
        self.connection = connection
        self.sink = sink
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let frame):
            headers = frame.headers
            if frame.headers.first(name: "x-answer-early") != nil {
                answeredEarly = true
                let head = HPACKHeaders([(":status", "200")])
                context.write(NIOAny(HTTP2Frame.FramePayload.headers(.init(headers: head))), promise: nil)
                context.writeAndFlush(
                    NIOAny(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "early")), endStream: true))), promise: nil)
                context.channel.setOption(.autoRead, value: false).whenFailure { _ in }
            }
            if frame.endStream { deliver(context) }
        case .data(let frame):
            if case .byteBuffer(var bytes) = frame.data { body.writeBuffer(&bytes) }
            if frame.endStream { deliver(context) }
        default:
            break
        }
    }

    private func deliver(_ context: ChannelHandlerContext) {
        guard let headers, !answeredEarly else { return }
        let streamID = (try? context.channel.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID)).map { Int($0) } ?? 0
        sink.yield(.init(connection: connection, streamID: streamID, headers: headers, body: String(buffer: body), stream: context.channel))
    }
}
