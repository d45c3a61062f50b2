import HTTPTypes
import LBPool

/// Runs `pool` for the duration of `body`, then cancels it.
func withRunningPool<Result: Sendable>(_ pool: LBPool, _ body: (LBPool) async throws -> Result) async throws -> Result {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await pool.run() }
        defer { group.cancelAll() }
        return try await body(pool)
    }
}

/// A pool configuration for local tests: the test's DNS server, quick refreshes.
func testConfiguration(dns: DNSServer?, minConnections: Int = 1, httpVersion: LBPool.Configuration.HTTPVersion = .http2) -> LBPool.Configuration {
    var configuration = LBPool.Configuration()
    configuration.minConnections = minConnections
    configuration.httpVersion = httpVersion
    configuration.requestTimeout = .seconds(10)
    configuration.reconnectBackoff.initial = .milliseconds(100)
    configuration.reconnectBackoff.maximum = .seconds(1)
    // A restarted test backend should not sit out the default 10 s.
    configuration.outlierDetection?.baseEjectionTime = .seconds(1)
    if let dns {
        configuration.dns.nameServers = [dns.address]
        configuration.dns.minRefreshInterval = .seconds(1)
        configuration.dns.perTryTimeout = .milliseconds(300)
        configuration.dns.lookupTimeout = .seconds(1)
    }
    configuration.dns.addressFamily = .ipv4
    return configuration
}

func get(_ path: String = "/", id: String) -> HTTPRequest {
    var request = HTTPRequest(method: .get, scheme: nil, authority: nil, path: path)
    request.headerFields[HTTPField.Name("x-request-id")!] = id
    return request
}
