import NIOCore
import Synchronization

/// A request body as a connection sends it: bytes, or a stream read as it is written.
enum OutboundBody: Sendable {
    case bytes(ByteBuffer)
    case stream(StreamedBody)
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
            throw StreamedBodyAlreadyRead()
        }
        try await produce(write)
    }
}

/// A streamed body's second reading: the retry rules send a body that began to be read only once,
/// so this is a bug if it is ever thrown.
struct StreamedBodyAlreadyRead: Error, CustomStringConvertible {
    var description: String { "the streamed request body was already read by an earlier attempt" }
}
