import NIOCore
import NIOPosix
import Synchronization

/// A scripted HTTP/1.1 server for what real servers do only by timing or by fault.
///
/// - ``Behaviour/dropSecondRequest``: the keep-alive race. It answers the first request of each
///   connection (with keep-alive, echoing the body) and, when a second request arrives on that
///   connection, closes it without a byte of response — as a server does that closed an idle
///   connection just as the client reused it.
/// - ``Behaviour/neverAnswer``: reads requests and answers none, keeping the connection open.
final class ScriptedHTTP1Server: Sendable {
    enum Behaviour: Sendable {
        case dropSecondRequest
        case neverAnswer
    }

    private let channel: any Channel
    private let record: Record
    var port: Int { channel.localAddress?.port ?? 0 }

    /// The bodies of the requests answered, in order.
    var answered: [String] { record.state.withLock { $0.answered } }
    /// Requests dropped unanswered.
    var dropped: Int { record.state.withLock { $0.dropped } }
    /// Connections that closed (by either side).
    var closedConnections: Int { record.state.withLock { $0.closed } }

    final class Record: Sendable {
        struct State {
            var answered: [String] = []
            var dropped = 0
            var closed = 0
        }
        let state = Mutex(State())
    }

    private init(channel: any Channel, record: Record) {
        self.channel = channel
        self.record = record
    }

    static func start(_ behaviour: Behaviour) async throws -> ScriptedHTTP1Server {
        let record = Record()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Connection(record: record, behaviour: behaviour))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return ScriptedHTTP1Server(channel: channel, record: record)
    }

    func close() async throws {
        try await channel.close()
    }

    /// One connection: reads whole requests (head, then a `content-length` body).
    private final class Connection: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let record: Record
        let behaviour: Behaviour
        var buffer = ByteBuffer()
        var requests = 0

        init(record: Record, behaviour: Behaviour) {
            self.record = record
            self.behaviour = behaviour
        }

        func channelInactive(context: ChannelHandlerContext) {
            record.state.withLock { $0.closed += 1 }
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            buffer.writeBuffer(&bytes)
            while let body = nextRequestBody() {
                requests += 1
                if behaviour == .neverAnswer {
                    record.state.withLock { $0.dropped += 1 }
                } else if requests == 1 {
                    record.state.withLock { $0.answered.append(body) }
                    let response = "HTTP/1.1 200 OK\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response)), promise: nil)
                } else {
                    record.state.withLock { $0.dropped += 1 }
                    context.close(promise: nil)
                    return
                }
            }
        }

        /// The body of the next whole request in the buffer, which it removes; `nil` until one is whole.
        private func nextRequestBody() -> String? {
            let text = String(buffer: buffer)
            guard let headEnd = text.range(of: "\r\n\r\n") else { return nil }
            let head = text[..<headEnd.lowerBound].lowercased()
            let length =
                head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            let headBytes = text[..<headEnd.upperBound].utf8.count
            guard buffer.readableBytes >= headBytes + length else { return nil }
            buffer.moveReaderIndex(forwardBy: headBytes)
            let body = buffer.readString(length: length) ?? ""
            buffer.discardReadBytes()
            return body
        }
    }
}
