/// One network address that the name of the target resolved to.
///
/// The pool keeps one endpoint, with its own warm connections, per distinct `ResolvedAddress`.
/// Two addresses are equal when their IP and port are; the TTL is information only.
public struct ResolvedAddress: Hashable, Sendable, CustomStringConvertible {
    /// The IP address in textual form (`"10.0.0.7"`, `"fd00::7"`).
    public var ip: String
    /// The TCP port to connect to.
    public var port: Int
    /// The TTL of the DNS record this address came from; `nil` when it did not come from DNS.
    public var ttl: Duration?

    public init(ip: String, port: Int, ttl: Duration? = nil) {
        self.ip = ip
        self.port = port
        self.ttl = ttl
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.ip == rhs.ip && lhs.port == rhs.port
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ip)
        hasher.combine(port)
    }

    public var description: String {
        ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// What a ``Resolver`` tells the pool after each lookup.
public struct ResolverUpdate: Sendable, Equatable {
    /// The addresses the pool should use now. Empty means "no address to send requests to".
    public var addresses: [ResolvedAddress]
    /// The error of the latest lookup, when it failed. With a non-empty ``addresses`` this means
    /// the pool is serving the last good set; with an empty one, requests fail with this error.
    public var error: ResolverError?

    public init(addresses: [ResolvedAddress], error: ResolverError? = nil) {
        self.addresses = addresses
        self.error = error
    }
}

/// Why a lookup did not produce addresses.
public struct ResolverError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// The name does not exist (NXDOMAIN) or has no records of the asked families (NODATA).
        /// An authoritative "zero endpoints right now".
        case noRecords
        /// The lookup itself failed (timeout, refused, SERVFAIL, unreachable server).
        case lookupFailed
    }

    public var kind: Kind
    /// The name that was looked up.
    public var name: String
    /// A human-readable reason, e.g. the c-ares status text.
    public var reason: String

    public init(kind: Kind, name: String, reason: String) {
        self.kind = kind
        self.name = name
        self.reason = reason
    }

    public var description: String {
        switch kind {
        case .noRecords: return "DNS name '\(name)' has no addresses: \(reason)"
        case .lookupFailed: return "DNS lookup of '\(name)' failed: \(reason)"
        }
    }
}
