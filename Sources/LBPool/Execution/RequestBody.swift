import NIOCore
import Synchronization

/// The body of a request: bytes, which the pool can send as often as a retry needs, or a
/// stream, which it can send once.
///
/// A streamed body is read only after the request head went out. A request the server never
/// processed is sent again only if its stream was not read yet; once reading began, neither a
/// transparent re-send nor a retry happens, and the error says so.
public struct RequestBody: Sendable {
    enum Storage: Sendable {
        case bytes(ByteBuffer)
        case stream(StreamedBody)
    }

    let storage: Storage

    /// A body held in memory; replayable.
    public static func bytes(_ buffer: ByteBuffer) -> RequestBody {
        RequestBody(storage: .bytes(buffer))
    }

    /// A body produced as it is sent; it can be read once. `length`, when known, becomes the
    /// `content-length`.
    public static func stream<Chunks: AsyncSequence & Sendable>(_ chunks: Chunks, length: Int? = nil) -> RequestBody
    where Chunks.Element == ByteBuffer {
        RequestBody(storage: .stream(StreamedBody(length: length) { write in
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

/// A one-shot body stream: remembers whether an attempt started reading it.
final class StreamedBody: Sendable {
    let length: Int?
    private let produce: @Sendable (_ write: (ByteBuffer) async throws -> Void) async throws -> Void
    private let read = Atomic<Bool>(false)

    init(length: Int?, produce: @escaping @Sendable (_ write: (ByteBuffer) async throws -> Void) async throws -> Void) {
        self.length = length
        self.produce = produce
    }

    var wasRead: Bool { read.load(ordering: .acquiring) }

    /// Hands every chunk to `write`; a second call throws.
    func send(_ write: (ByteBuffer) async throws -> Void) async throws {
        guard !read.exchange(true, ordering: .acquiringAndReleasing) else {
            throw LBPoolError(.invalidRequest, "the streamed request body was already read by an earlier attempt")
        }
        try await produce(write)
    }
}
