import CoreMetrics
import Synchronization

/// The pool's metrics, on the factory the pool was given (the library never bootstraps
/// swift-metrics). Labels start with `lbpool_`; per-address metrics carry an `address` dimension
/// and are destroyed when the address leaves the resolved set.
///
/// | label | kind | dimensions |
/// |---|---|---|
/// | `lbpool_connections` | gauge | `address`, `state` (connecting, ready, draining) |
/// | `lbpool_addresses` | gauge | (resolved) |
/// | `lbpool_subset_member` | gauge | `address`: its rank (1 = best) while in this client's subset |
/// | `lbpool_pending_requests` | meter | (waiting for a ready connection or a free stream) |
/// | `lbpool_picks_total` | counter | |
/// | `lbpool_requests_total` | counter | `outcome` (success, failure) |
/// | `lbpool_request_failures_total` | counter | `address` (of the failed request's last attempt), `code` (``LBPoolError/Code``) |
/// | `lbpool_goaways_total` | counter | `code` |
/// | `lbpool_protocol_violations_total` | counter | `code` (of the client's GOAWAY) |
/// | `lbpool_rotations_total` | counter | |
/// | `lbpool_ejections_total` | counter | |
/// | `lbpool_transparent_retries_total` | counter | |
/// | `lbpool_retries_total` | counter | |
/// | `lbpool_retry_budget_exhausted_total` | counter | |
/// | `lbpool_dns_refreshes_total` / `lbpool_dns_failures_total` | counter | |
/// | `http.client.open_connections` | gauge | OpenTelemetry's: `http.connection.state` (active, idle), `server.address`, `server.port`, `url.scheme`, `network.peer.address`, `network.peer.port` |
/// | `http.client.request.duration` | recorder (histogram), seconds | OpenTelemetry's: `http.request.method`, `server.address`, `server.port`, `url.scheme`, `http.response.status_code`, `error.type`; opt-in `network.peer.address` |
final class PoolMetrics: Sendable {
    /// Where the pool sends, for the attributes of the OpenTelemetry metrics.
    struct Server: Sendable {
        var address: String
        var port: Int
        var scheme: String
    }

    private struct DurationKey: Hashable {
        var method: String
        var status: Int?
        var errorType: String?
        var peer: ResolvedAddress?
    }

    typealias ConnectionCounts = (connecting: Int, ready: Int, draining: Int)

    private let factory: any MetricsFactory
    let picks: Counter
    let succeeded: Counter
    private let failed: Counter
    let transparentRetries: Counter
    let retries: Counter
    let budgetExhausted: Counter
    let rotations: Counter
    let ejections: Counter
    let dnsRefreshes: Counter
    let dnsFailures: Counter
    let addresses: Gauge
    let pendingRequests: Meter
    private let connectionGauges = Mutex<[ResolvedAddress: [Gauge]]>([:])
    private let subsetGauges = Mutex<[ResolvedAddress: Gauge]>([:])
    private let server: Server?
    private let durationByAddress: Bool
    /// The duration recorders made so far, one per set of attributes.
    private let durations = Mutex<[DurationKey: Recorder]>([:])
    private let usages = Mutex<[ResolvedAddress: ConnectionUsage]>([:])

    /// - Parameters:
    ///   - server: The target, for the OpenTelemetry attributes.
    ///   - durationByAddress: Splits the request duration by `network.peer.address`.
    init(factory: any MetricsFactory, server: Server? = nil, durationByAddress: Bool = false) {
        self.factory = factory
        self.server = server
        self.durationByAddress = durationByAddress
        picks = Counter(label: "lbpool_picks_total", factory: factory)
        succeeded = Counter(label: "lbpool_requests_total", dimensions: [("outcome", "success")], factory: factory)
        failed = Counter(label: "lbpool_requests_total", dimensions: [("outcome", "failure")], factory: factory)
        transparentRetries = Counter(label: "lbpool_transparent_retries_total", factory: factory)
        retries = Counter(label: "lbpool_retries_total", factory: factory)
        budgetExhausted = Counter(label: "lbpool_retry_budget_exhausted_total", factory: factory)
        rotations = Counter(label: "lbpool_rotations_total", factory: factory)
        ejections = Counter(label: "lbpool_ejections_total", factory: factory)
        dnsRefreshes = Counter(label: "lbpool_dns_refreshes_total", factory: factory)
        dnsFailures = Counter(label: "lbpool_dns_failures_total", factory: factory)
        addresses = Gauge(label: "lbpool_addresses", factory: factory)
        pendingRequests = Meter(label: "lbpool_pending_requests", factory: factory)
    }

    /// Records one request's duration under OpenTelemetry's `http.client.request.duration`: from
    /// the call until its response was handled or it failed; `status` is the last response's,
    /// `errorType` the failure's (the ``LBPoolError/Code``, or the status from 400 up), `peer` the
    /// last attempt's address.
    func requestDuration(_ duration: Duration, method: String, status: Int?, errorType: String?, peer: ResolvedAddress?) {
        let key = DurationKey(method: method, status: status, errorType: errorType, peer: durationByAddress ? peer : nil)
        let recorder = durations.withLock { recorders in
            if let recorder = recorders[key] { return recorder }
            // Addresses come and go: past a bound, start over (the factory keeps what it made).
            if recorders.count >= 4096 { recorders.removeAll() }
            var dimensions = [("http.request.method", method)]
            if let server {
                dimensions += [("server.address", server.address), ("server.port", "\(server.port)"), ("url.scheme", server.scheme)]
            }
            if let status { dimensions.append(("http.response.status_code", "\(status)")) }
            if let errorType { dimensions.append(("error.type", errorType)) }
            if let peer = key.peer { dimensions.append(("network.peer.address", peer.ip)) }
            let recorder = Recorder(label: "http.client.request.duration", dimensions: dimensions, aggregate: true, factory: factory)
            recorders[key] = recorder
            return recorder
        }
        recorder.record(duration.seconds)
    }

    /// A request failed; with the address of its last attempt and the error's code, it is also
    /// counted for that address (a failure before any address was chosen, or an error of the
    /// caller's own handler, has none).
    func requestFailed(at address: ResolvedAddress?, code: String) {
        failed.increment()
        guard let address else { return }
        Counter(
            label: "lbpool_request_failures_total",
            dimensions: [("address", address.description), ("code", code)],
            factory: factory
        ).increment()
    }

    func goAway(code: HTTP2Code) {
        let name = code.description
        Counter(label: "lbpool_goaways_total", dimensions: [("code", name)], factory: factory).increment()
    }

    /// The client closed a connection whose server broke HTTP/2 or a limit.
    func protocolViolation(code: HTTP2Code) {
        Counter(label: "lbpool_protocol_violations_total", dimensions: [("code", code.description)], factory: factory).increment()
    }

    /// The `http.client.open_connections` counts of `address`, made on first use.
    func connectionUsage(for address: ResolvedAddress) -> ConnectionUsage {
        usages.withLock { usages in
            if let usage = usages[address] { return usage }
            var dimensions: [(String, String)] = []
            if let server {
                dimensions += [("server.address", server.address), ("server.port", "\(server.port)"), ("url.scheme", server.scheme)]
            }
            dimensions += [("network.peer.address", address.ip), ("network.peer.port", "\(address.port)")]
            let usage = ConnectionUsage(
                idle: Gauge(label: "http.client.open_connections", dimensions: [("http.connection.state", "idle")] + dimensions, factory: factory),
                active: Gauge(label: "http.client.open_connections", dimensions: [("http.connection.state", "active")] + dimensions, factory: factory))
            usages[address] = usage
            return usage
        }
    }

    /// The address has no endpoint any more: its `http.client.open_connections` gauges go.
    func forgetConnectionUsage(of address: ResolvedAddress) {
        usages.withLock { $0.removeValue(forKey: address) }?.destroy()
    }

    /// Records the subset's addresses with their ranks; destroys the gauges of addresses that left it.
    func subsetMembers(_ ranks: [ResolvedAddress: Int]) {
        let (update, destroyed) = subsetGauges.withLock { gauges -> ([(Gauge, Int)], [Gauge]) in
            var destroyed: [Gauge] = []
            for (address, gauge) in gauges where ranks[address] == nil {
                destroyed.append(gauge)
                gauges[address] = nil
            }
            var update: [(Gauge, Int)] = []
            for (address, rank) in ranks {
                let gauge = gauges[address] ?? Gauge(label: "lbpool_subset_member", dimensions: [("address", address.description)], factory: factory)
                gauges[address] = gauge
                update.append((gauge, rank))
            }
            return (update, destroyed)
        }
        for gauge in destroyed { gauge.destroy() }
        for (gauge, rank) in update { gauge.record(rank) }
    }

    /// Records the connections per address and state; destroys the gauges of addresses gone.
    func connections(_ counts: [ResolvedAddress: ConnectionCounts]) {
        let (update, destroyed) = connectionGauges.withLock { gauges -> ([(Gauge, Int)], [Gauge]) in
            var destroyed: [Gauge] = []
            for (address, old) in gauges where counts[address] == nil {
                destroyed += old
                gauges[address] = nil
            }
            var update: [(Gauge, Int)] = []
            for (address, count) in counts {
                let trio =
                    gauges[address]
                    ?? ["connecting", "ready", "draining"].map { state in
                        Gauge(label: "lbpool_connections", dimensions: [("address", address.description), ("state", state)], factory: factory)
                    }
                gauges[address] = trio
                update += [(trio[0], count.connecting), (trio[1], count.ready), (trio[2], count.draining)]
            }
            return (update, destroyed)
        }
        for gauge in destroyed { gauge.destroy() }
        for (gauge, value) in update { gauge.record(value) }
    }
}
