import NIOCore
import NIOHTTP2

/// The body of a response, as the server sends it: a sequence of byte chunks.
///
/// It can be iterated once, inside the closure that received the response; the stream is
/// closed when that closure returns, whether or not the body was read to the end.
public struct ResponseBody: AsyncSequence {
    public typealias Element = ByteBuffer
    public typealias Failure = any Error

    final class Reader {
        private var iterator: NIOAsyncChannelInboundStream<HTTP2Frame.FramePayload>.AsyncIterator
        private var finished = false

        init(_ iterator: NIOAsyncChannelInboundStream<HTTP2Frame.FramePayload>.AsyncIterator) {
            self.iterator = iterator
        }

        func next() async throws -> ByteBuffer? {
            while !finished {
                guard let payload = try await iterator.next() else {
                    finished = true
                    throw LBPoolError(.connectionFailed, "stream closed before the response body ended")
                }
                switch payload {
                case .data(let data):
                    finished = data.endStream
                    if case .byteBuffer(let buffer) = data.data, buffer.readableBytes > 0 {
                        return buffer
                    }
                case .headers(let trailers):
                    // Trailers end the body; their content is not exposed yet.
                    finished = finished || trailers.endStream
                default:
                    continue
                }
            }
            return nil
        }
    }

    private let reader: Reader

    init(_ reader: Reader) {
        self.reader = reader
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let reader: Reader

        public mutating func next() async throws -> ByteBuffer? {
            try await reader.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(reader: reader)
    }

    /// Reads the whole body into one buffer; throws ``LBPoolError`` with code
    /// `.responseTooLarge` if it is larger than `maxBytes`.
    public func collect(upTo maxBytes: Int) async throws -> ByteBuffer {
        var collected = ByteBuffer()
        while let chunk = try await reader.next() {
            guard collected.readableBytes + chunk.readableBytes <= maxBytes else {
                throw LBPoolError(.responseTooLarge, "response body larger than \(maxBytes) bytes")
            }
            var chunk = chunk
            collected.writeBuffer(&chunk)
        }
        return collected
    }
}
