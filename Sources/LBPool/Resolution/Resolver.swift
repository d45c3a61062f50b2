/// The source of addresses for a pool.
///
/// The pool calls ``updates(host:port:refreshRequests:)`` once when ``LBPool/run()`` starts and
/// iterates the returned sequence until the pool stops. Each element replaces the whole set of
/// addresses. A resolver should produce its first element promptly and then whenever the set
/// may have changed; it should also look up again soon after ``RefreshRequests/wait()`` returns,
/// which the pool uses to ask for an early lookup (a connection failed or received GOAWAY).
///
/// The sequence is pulled from the pool's own task: produce elements lazily, for example with
/// `AsyncStream(unfolding:)`, so that no work outlives the pool.
public protocol Resolver: Sendable {
    /// Returns the stream of address sets for `host`, whose connections use `port`.
    func updates(host: String, port: Int, refreshRequests: RefreshRequests) -> AsyncStream<ResolverUpdate>
}

/// A resolver that always yields the same addresses, once.
///
/// Used for IP-literal targets, and useful in tests and for fixed fleets.
public struct StaticResolver: Resolver {
    /// The hosts (IP literals) to use; the port comes from the target.
    public var ips: [String]

    public init(ips: [String]) {
        self.ips = ips
    }

    public func updates(host: String, port: Int, refreshRequests: RefreshRequests) -> AsyncStream<ResolverUpdate> {
        let update = ResolverUpdate(addresses: ips.map { ResolvedAddress(ip: $0, port: port) })
        return AsyncStream { continuation in
            continuation.yield(update)
            // Left open: ending the stream would read as "the resolver stopped".
        }
    }
}
