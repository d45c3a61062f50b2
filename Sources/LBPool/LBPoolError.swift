/// A request the pool could not complete.
public struct LBPoolError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The name resolved to no address (NXDOMAIN or NODATA), so there is nowhere to send it.
        public static let noAddresses = Code("noAddresses")
        /// The request's deadline passed (waiting for a ready endpoint, or for the response head).
        public static let deadlineExceeded = Code("deadlineExceeded")
        /// The pool is shutting down or is not running.
        public static let shutdown = Code("shutdown")
        /// The connection failed under the request.
        public static let connectionFailed = Code("connectionFailed")
        /// The request failed after it may have reached the server.
        public static let requestFailed = Code("requestFailed")
        /// The server sent something that is not a valid HTTP/2 response.
        public static let invalidResponse = Code("invalidResponse")
        /// The response body was larger than the configured limit.
        public static let responseTooLarge = Code("responseTooLarge")
        /// The request cannot be sent as given.
        public static let invalidRequest = Code("invalidRequest")
    }

    public var code: Code
    public var message: String
    /// The address that served the failed attempt, if one was chosen.
    public var address: ResolvedAddress?
    /// The error underneath, if any.
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, address: ResolvedAddress? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.address = address
        self.underlying = underlying
    }

    public var description: String {
        var text = "\(code): \(message)"
        if let address { text += " [\(address)]" }
        if let underlying { text += " (\(underlying))" }
        return text
    }
}
