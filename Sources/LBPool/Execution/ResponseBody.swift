import HTTPTypes
import NIOCore

/// The body of a response, as the server sends it: a sequence of byte chunks.
///
/// It can be iterated once, inside the closure that received the response; the stream is
/// closed when that closure returns, whether or not the body was read to the end.
public struct ResponseBody: AsyncSequence {
    public typealias Element = ByteBuffer
    public typealias Failure = any Error

    private let reader: ResponseStream

    init(_ reader: ResponseStream) {
        self.reader = reader
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let reader: ResponseStream

        public mutating func next() async throws -> ByteBuffer? {
            try await ResponseBody.next(of: reader)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(reader: reader)
    }

    /// The response's trailers, once the server ended the body with them; `nil` before, or if
    /// it sent none. Read the body to its end first to be sure they arrived.
    public var trailers: HTTPFields? {
        reader.trailers
    }

    /// Reads the whole body into one buffer; throws ``LBPoolError`` with code
    /// `.responseTooLarge` if it is larger than `maxBytes`.
    public func collect(upTo maxBytes: Int) async throws -> ByteBuffer {
        // A body that arrives in one chunk (most do) is returned as it is, without a copy.
        guard var collected = try await Self.next(of: reader) else { return ByteBuffer() }
        guard collected.readableBytes <= maxBytes else {
            throw LBPoolError(.responseTooLarge, "response body larger than \(maxBytes) bytes")
        }
        if let expected = reader.expectedLength, expected > collected.readableBytes, expected <= maxBytes {
            // Room for the whole body at once: no copy grows with the bytes collected.
            var whole = ByteBufferAllocator().buffer(capacity: expected)
            whole.writeBuffer(&collected)
            collected = whole
        }
        while var chunk = try await Self.next(of: reader) {
            guard collected.readableBytes + chunk.readableBytes <= maxBytes else {
                throw LBPoolError(.responseTooLarge, "response body larger than \(maxBytes) bytes")
            }
            collected.writeBuffer(&chunk)
        }
        return collected
    }

    /// The stream's next chunk; a body the connection cut off is the caller's ``LBPoolError``.
    fileprivate static func next(of reader: ResponseStream) async throws -> ByteBuffer? {
        do {
            return try await reader.next()
        } catch let cut as ResponseBodyCutOff {
            throw LBPoolError(.connectionFailed, "stream closed before the response body ended", underlying: cut.underlying)
        }
    }
}
