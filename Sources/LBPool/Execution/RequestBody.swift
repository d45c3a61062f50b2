import NIOCore

/// The body of a request: bytes, which the pool can send as often as a retry needs, or a
/// stream, which it can send once.
///
/// A streamed body is read only after the request head went out. A request the server never
/// processed is sent again only if its stream was not read yet; once reading began, neither a
/// transparent re-send nor a retry happens, and the error says so.
public struct RequestBody: Sendable {
    /// What the connection sends.
    let storage: OutboundBody

    /// A body held in memory; replayable.
    public static func bytes(_ buffer: ByteBuffer) -> RequestBody {
        RequestBody(storage: .bytes(buffer))
    }

    /// A body produced as it is sent; it can be read once. `length`, when known, becomes the
    /// `content-length`.
    public static func stream<Chunks: AsyncSequence & Sendable>(_ chunks: Chunks, length: Int? = nil) -> RequestBody
    where Chunks.Element == ByteBuffer {
        RequestBody(
            storage: .stream(
                StreamedBody(length: length) { write in
                    for try await chunk in chunks { try await write(chunk) }
                }))
    }

    /// The `content-length` to announce, if known.
    var length: Int? {
        switch storage {
        case .bytes(let buffer): return buffer.readableBytes
        case .stream(let stream): return stream.length
        }
    }

    /// Whether another attempt could send this body again.
    var isReplayable: Bool {
        switch storage {
        case .bytes: return true
        case .stream(let stream): return !stream.wasRead
        }
    }
}
