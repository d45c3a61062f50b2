import LBPool

/// Both HTTP versions, for the tests that run over each.
let bothHTTPVersions: [LBPool.Configuration.HTTPVersion] = [.http2, .http1]

/// A backend for `httpVersion`: nginx with h2c, or for HTTP/1.1 nginx without `http2` on the port.
func nginx(
    _ ip: String, _ port: Int, for httpVersion: LBPool.Configuration.HTTPVersion, keepaliveRequests: Int = 1_000_000
) throws -> NginxBackend {
    try NginxBackend(ip: ip, port: port, keepaliveRequests: keepaliveRequests, http1Only: httpVersion == .http1)
}

/// The name every integration test resolves.
let serviceName = "api.demo.svc.cluster.local"

/// nginx backends on `ips`, all on one free port (like the pods of a headless service), and
/// dnsmasq answering ``serviceName`` with them at `ttl`. `alsoFree` reserves the port on
/// addresses the test adds later; `makeBackend` configures each backend.
func startFleet(
    _ ips: [String],
    ttl: Int = 5,
    alsoFree: [String] = [],
    makeBackend: (_ ip: String, _ port: Int) throws -> NginxBackend = { try NginxBackend(ip: $0, port: $1) }
) async throws -> (backends: [NginxBackend], dns: DNSServer, port: Int) {
    let port = try freePort(alsoOn: ips + alsoFree)
    var backends: [NginxBackend] = []
    for ip in ips {
        let backend = try makeBackend(ip, port)
        try await backend.start()
        backends.append(backend)
    }
    let dns = try DNSServer(ttl: ttl)
    try dns.setRecords([serviceName: ips])
    try await dns.start()
    return (backends, dns, port)
}
