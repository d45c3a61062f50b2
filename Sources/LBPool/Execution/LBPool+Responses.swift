import HTTPTypes
import NIOCore

extension LBPool {
    /// A response whose body is read as it arrives.
    public struct StreamingResponse {
        /// Status and header fields.
        public var head: HTTPResponse
        /// The body; read it inside the closure that received the response.
        public var body: ResponseBody
        /// The address that served the request.
        public var servedBy: ResolvedAddress
        /// Fires when the connection carrying this stream starts to go away.
        public var connectionClosing: ConnectionClosingSignal
        /// Attempts that may have reached a server, this one included (transparent re-sends of
        /// unprocessed requests are not counted).
        public var attempts: Int
        /// Set when the status was retryable but the request was not tried again, and why.
        public var retryStop: RetryStop?
    }

    /// A response with its whole body.
    public struct Response: Sendable {
        public var head: HTTPResponse
        public var body: ByteBuffer
        public var servedBy: ResolvedAddress
        /// See ``StreamingResponse/attempts``.
        public var attempts: Int
        /// See ``StreamingResponse/retryStop``.
        public var retryStop: RetryStop?
        /// The response's trailers (gRPC puts its status there), if the server sent any.
        public var trailers: HTTPFields?
    }

    /// Per-request settings that override the pool's.
    public struct RequestOptions: Sendable {
        /// Whether the request may be repeated safely. Default: `nil`, meaning by method
        /// (GET, HEAD, OPTIONS, TRACE, PUT and DELETE are idempotent).
        public var idempotent: Bool?
        /// Replaces ``Configuration/retryPolicy`` for this request. Default: `nil`.
        public var retryPolicy: RetryPolicy?

        public init(idempotent: Bool? = nil, retryPolicy: RetryPolicy? = nil) {
            self.idempotent = idempotent
            self.retryPolicy = retryPolicy
        }
    }
}
