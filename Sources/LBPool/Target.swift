/// A parsed `http://host:port` or `https://host:port` target.
public struct Target: Hashable, Sendable, CustomStringConvertible {
    public enum Scheme: String, Sendable, Hashable {
        /// HTTP/2 over cleartext TCP with prior knowledge (h2c).
        case http
        /// HTTP/2 over TLS, negotiated with ALPN.
        case https
    }

    public var scheme: Scheme
    /// The host name or IP literal (without brackets).
    public var host: String
    public var port: Int

    /// Whether ``host`` is an IPv4 or IPv6 literal rather than a name.
    public var isIPLiteral: Bool { IPLiteral.isIPv4(host) || IPLiteral.isIPv6(host) }

    /// The `:authority` of requests: host, and the port when it is not the scheme's default.
    public var authority: String {
        let hostPart = IPLiteral.isIPv6(host) ? "[\(host)]" : host
        let defaultPort = scheme == .http ? 80 : 443
        return port == defaultPort ? hostPart : "\(hostPart):\(port)"
    }

    public var description: String { "\(scheme.rawValue)://\(authority)" }

    /// Parses a target URL such as `http://api.default.svc.cluster.local:8080`.
    ///
    /// The port defaults to 80 for `http` and 443 for `https`. A path other than `/`, a query,
    /// a fragment or user info is rejected: the target names a service, requests carry paths.
    public init(parsing url: String) throws(LBPoolConfigurationError) {
        func bad(_ reason: String) -> LBPoolConfigurationError {
            LBPoolConfigurationError(setting: "target", value: url, reason: reason)
        }
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else {
            throw bad("expected http://host[:port] or https://host[:port]")
        }
        let schemeText = url[..<colon].lowercased()
        guard let scheme = Scheme(rawValue: schemeText) else {
            throw bad("unsupported scheme '\(schemeText)', expected http or https")
        }
        var rest = url[url.index(colon, offsetBy: 3)...]
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            let tail = rest[slash...]
            guard tail == "/" else { throw bad("a target has no path, query or fragment (found '\(tail)')") }
            rest = rest[..<slash]
        }
        guard !rest.contains("@") else { throw bad("user info is not supported") }
        guard let hostPort = HostPort.parse(String(rest), defaultPort: scheme == .http ? 80 : 443) else {
            throw bad("expected host[:port] with a port from 1 to 65535")
        }
        guard !hostPort.host.isEmpty else { throw bad("empty host") }
        self.scheme = scheme
        self.host = hostPort.host
        self.port = hostPort.port
    }
}
