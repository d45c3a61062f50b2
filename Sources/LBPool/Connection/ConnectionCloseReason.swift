/// Why a connection stopped taking new requests.
public enum ConnectionCloseReason: Sendable, Hashable, CustomStringConvertible {
    /// The server sent GOAWAY.
    case goAway(errorCode: HTTP2Code, lastStreamID: Int, debugData: String)
    /// The connection reached its maximum lifetime and was replaced.
    case lifetimeExpired
    /// Its address left the resolved set.
    case addressRemoved
    /// Its address is still resolved but left this client's subset
    /// (``LBPool/Configuration/subset``): a better-ranked address joined DNS or recovered.
    case leftSubset
    /// The pool is shutting down.
    case poolShutdown
    /// The peer stopped answering keepalive PINGs.
    case keepaliveTimeout
    /// The connection opened as many streams as its server accepts on one connection (learned
    /// from earlier GOAWAYs, see ``LBPool/Configuration``), and a new one takes over.
    case streamLimitReached(Int)
    /// An HTTP/1.1 server closes the connection, which is not an error: it said so in its
    /// response (`Connection: close`, an HTTP/1.0 response without keep-alive), it closed the
    /// connection while idle, or it ended its response before the request body was sent.
    /// `detail` says which.
    case serverClosing(String)
    /// The connection failed or was closed by the peer without GOAWAY.
    case connectionError(String)
    /// The client closed the connection because the server broke HTTP/2 or went past one of
    /// the limits in ``LBPool/Configuration/HTTP2Limits``: the client's GOAWAY carried `code`,
    /// and `message` says what the server did. The address counts a failure for outlier
    /// detection.
    case protocolViolation(HTTP2Code, String)

    public var description: String {
        switch self {
        case .goAway(let code, let lastStreamID, let debugData):
            let name = code.description
            return "GOAWAY \(name) last-stream-id \(lastStreamID)" + (debugData.isEmpty ? "" : " (\(debugData))")
        case .lifetimeExpired: return "maximum connection lifetime reached"
        case .addressRemoved: return "address removed from DNS"
        case .leftSubset: return "address left the subset"
        case .poolShutdown: return "pool shutting down"
        case .keepaliveTimeout: return "keepalive timeout"
        case .streamLimitReached(let streams): return "the server's \(streams) streams per connection reached"
        case .serverClosing(let detail): return "the server closes the connection: \(detail)"
        case .connectionError(let message): return "connection error: \(message)"
        case .protocolViolation(let code, let message): return "closed by the client for \(code): \(message)"
        }
    }
}
