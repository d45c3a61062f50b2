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
final class PoolMetrics: Sendable {
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

    init(factory: any MetricsFactory) {
        self.factory = factory
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
