import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix

/// An h2c server in this process that answers every request with `200` and a short body, so
/// that a benchmark of one request measures the client, not a peer in another process.
struct InProcessServer: Sendable {
    let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }

    static func start() async throws -> InProcessServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(Responder())
                        }
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return InProcessServer(channel: channel)
    }

    func close() async throws {
        try await channel.close()
    }
}

/// Answers a stream once its request ended.
private final class Responder: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let ended: Bool
        switch unwrapInboundIn(data) {
        case .headers(let headers): ended = headers.endStream
        case .data(let data): ended = data.endStream
        default: ended = false
        }
        guard ended else { return }
        context.write(wrapOutboundOut(.headers(.init(headers: [":status": "200"]))), promise: nil)
        let body = context.channel.allocator.buffer(string: "ok\n")
        context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true))), promise: nil)
    }
}
