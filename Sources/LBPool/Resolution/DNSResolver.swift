import CCAres
import Synchronization

/// Resolves a name with c-ares, A and AAAA, and looks it up again when the records' TTL ends.
///
/// - Refresh happens at the smallest record TTL, clamped to
///   [``Configuration/minRefreshInterval``, ``Configuration/maxRefreshInterval``].
/// - An early refresh requested by the pool runs at most once per
///   ``Configuration/minEarlyRefreshInterval``.
/// - A failed lookup (timeout, SERVFAIL, refused) keeps the last good addresses and is retried
///   after ``Configuration/minRefreshInterval``; an authoritative empty answer (NXDOMAIN or
///   NODATA) follows ``Configuration/emptyAnswerPolicy``.
/// - The hosts file is not consulted: a headless service is DNS. Use ``StaticResolver`` for fixed
///   addresses. The search list and `ndots` of resolv.conf apply; a name with a trailing dot is
///   looked up as is, in one query per record type.
public struct DNSResolver: Resolver {
    /// Which record types to ask for.
    public enum AddressFamily: Sendable, Hashable {
        /// A records only.
        case ipv4
        /// AAAA records only.
        case ipv6
        /// A and AAAA, in parallel; the pool uses every address of both.
        case ipv4AndIPv6
    }

    /// What to do when the name stops existing (NXDOMAIN) or has no records (NODATA).
    public enum EmptyAnswerPolicy: Sendable, Hashable {
        /// Keep serving the last good addresses until their TTL (as clamped) runs out, then
        /// fail requests with an error that names the DNS answer. Rides out a short moment in
        /// which no pod is ready.
        case keepLastAddressesForOneTTL
        /// Drop every address at once; requests fail until the name has addresses again.
        case dropAddresses
    }

    public struct Configuration: Sendable, Hashable {
        /// Name servers as `host:port` (`[v6]:port` for IPv6). Default: empty, meaning the
        /// servers, search list and `ndots` of `/etc/resolv.conf`.
        public var nameServers: [String] = []
        /// Record types to ask for. Default: ``AddressFamily/ipv4AndIPv6``.
        public var addressFamily: AddressFamily = .ipv4AndIPv6
        /// c-ares' timeout for one try. Default: 2 s (c-ares' own default is 5 s).
        public var perTryTimeout: Duration = .seconds(2)
        /// c-ares' tries per server. Default: 2 (c-ares' own default is 4).
        public var tries: Int = 2
        /// The most one lookup may take, whatever c-ares does. Default: 6 s, just above what
        /// 2 s × 2 tries (the second doubled) take with one server.
        public var lookupTimeout: Duration = .seconds(6)
        /// Lower bound of the refresh interval. Default: 5 s. Also the retry interval after a
        /// failed lookup.
        public var minRefreshInterval: Duration = .seconds(5)
        /// Upper bound of the refresh interval. Default: 5 min.
        public var maxRefreshInterval: Duration = .seconds(300)
        /// Early refreshes requested by the pool run at most this often. Default: 1 s.
        public var minEarlyRefreshInterval: Duration = .seconds(1)
        /// Default: ``EmptyAnswerPolicy/keepLastAddressesForOneTTL``.
        public var emptyAnswerPolicy: EmptyAnswerPolicy = .keepLastAddressesForOneTTL

        public init() {}

        /// Checks every value, throwing an error that names the first bad one.
        public func validate() throws(LBPoolConfigurationError) {
            for server in nameServers where HostPort.parse(server) == nil {
                throw .init(setting: "dns.nameServers", value: server, reason: "expected host:port, e.g. 127.0.0.1:53 or [::1]:53")
            }
            try Validate.positive(perTryTimeout, "dns.perTryTimeout")
            try Validate.positive(lookupTimeout, "dns.lookupTimeout")
            try Validate.positive(minRefreshInterval, "dns.minRefreshInterval")
            try Validate.positive(minEarlyRefreshInterval, "dns.minEarlyRefreshInterval")
            guard tries >= 1 else {
                throw .init(setting: "dns.tries", value: "\(tries)", reason: "must be at least 1")
            }
            guard maxRefreshInterval >= minRefreshInterval else {
                throw .init(
                    setting: "dns.maxRefreshInterval", value: "\(maxRefreshInterval)",
                    reason: "must not be below dns.minRefreshInterval (\(minRefreshInterval))")
            }
        }
    }

    public let configuration: Configuration

    /// Creates a resolver; throws if the configuration has a bad value.
    public init(configuration: Configuration = .init()) throws(LBPoolConfigurationError) {
        try configuration.validate()
        self.configuration = configuration
    }

    public func updates(host: String, port: Int, refreshRequests: RefreshRequests) -> AsyncStream<ResolverUpdate> {
        let loop = DNSRefreshLoop(configuration: configuration, host: host, port: port, refreshRequests: refreshRequests)
        return AsyncStream(unfolding: { await loop.next() }, onCancel: { loop.stop() })
    }
}

/// The state behind one ``DNSResolver/updates(host:port:refreshRequests:)`` stream.
///
/// `next()` is only ever called by the single consumer of the stream, one call at a time
/// (AsyncStream's unfolding contract); the mutable parts still sit behind a Mutex so the
/// type is honestly Sendable.
final class DNSRefreshLoop: Sendable {
    private struct State {
        var refresh: DNSRefreshState
        var thread: AresLookupThread?
        var stopped = false
    }

    private let configuration: DNSResolver.Configuration
    private let host: String
    private let port: Int
    private let refreshRequests: RefreshRequests
    private let state: Mutex<State>

    init(configuration: DNSResolver.Configuration, host: String, port: Int, refreshRequests: RefreshRequests) {
        self.configuration = configuration
        self.host = host
        self.port = port
        self.refreshRequests = refreshRequests
        let settings = DNSRefreshState.Settings(
            minRefreshInterval: configuration.minRefreshInterval,
            maxRefreshInterval: configuration.maxRefreshInterval,
            minEarlyRefreshInterval: configuration.minEarlyRefreshInterval,
            emptyAnswerPolicy: configuration.emptyAnswerPolicy
        )
        self.state = Mutex(State(refresh: DNSRefreshState(settings: settings)))
    }

    deinit {
        state.withLock { $0.thread?.shutdown() }
    }

    func stop() {
        let thread = state.withLock { state -> AresLookupThread? in
            state.stopped = true
            defer { state.thread = nil }
            return state.thread
        }
        thread?.shutdown()
    }

    func next() async -> ResolverUpdate? {
        let (nextRefreshAt, earlyAllowedAt) = state.withLock { state in
            (state.refresh.nextRefreshAt, state.refresh.earliestEarlyRefresh(requestedAt: .now))
        }
        if let nextRefreshAt {
            await waitForRefresh(until: nextRefreshAt, earlyAllowedAt: earlyAllowedAt)
        }
        if Task.isCancelled { return nil }
        let thread: AresLookupThread
        do {
            thread = try lookupThread()
        } catch {
            return state.withLock { $0.refresh.lookupFailed(error, at: .now) }
        }
        guard !Task.isCancelled else { return nil }
        let outcome = await lookup(on: thread)
        return state.withLock { state in
            switch outcome {
            case .success(let records): return state.refresh.lookupSucceeded(records, at: .now)
            case .failure(let error): return state.refresh.lookupFailed(error, at: .now)
            }
        }
    }

    /// Sleeps until the scheduled refresh, or until an early refresh is requested and allowed.
    private func waitForRefresh(until deadline: ContinuousClock.Instant, earlyAllowedAt: ContinuousClock.Instant) async {
        let requests = refreshRequests
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
            }
            group.addTask {
                await requests.wait()
                if !Task.isCancelled {
                    try? await Task.sleep(until: min(earlyAllowedAt, deadline), clock: .continuous)
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    private func lookupThread() throws(ResolverError) -> AresLookupThread {
        if let thread = state.withLock({ $0.thread }) { return thread }
        let thread: AresLookupThread
        do {
            thread = try AresLookupThread(
                servers: configuration.nameServers,
                perTryTimeout: configuration.perTryTimeout,
                tries: configuration.tries
            )
        } catch {
            throw ResolverError(kind: .lookupFailed, name: host, reason: error.reason)
        }
        let stopped = state.withLock { state -> Bool in
            if !state.stopped { state.thread = thread }
            return state.stopped
        }
        if stopped { thread.shutdown() }
        return thread
    }

    private func lookup(on thread: AresLookupThread) async -> Result<[(address: ResolvedAddress, ttlSeconds: Int)], ResolverError> {
        let types: [AresRecordType]
        switch configuration.addressFamily {
        case .ipv4: types = [.a]
        case .ipv6: types = [.aaaa]
        case .ipv4AndIPv6: types = [.a, .aaaa]
        }
        let deadline = ContinuousClock.now + configuration.lookupTimeout
        let name = host
        let outcomes = await withTaskGroup(of: AresLookupOutcome.self) { group in
            for type in types {
                group.addTask {
                    await withCheckedContinuation { continuation in
                        thread.lookup(
                            .init(name: name, type: type, deadline: deadline) { outcome in
                                continuation.resume(returning: outcome)
                            })
                    }
                }
            }
            var outcomes: [AresLookupOutcome] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        return Self.combine(outcomes, name: host, port: port)
    }

    /// Any records win; otherwise a transport failure wins over "no records", because only an
    /// answer from every asked type is authoritative.
    static func combine(_ outcomes: [AresLookupOutcome], name: String, port: Int) -> Result<[(address: ResolvedAddress, ttlSeconds: Int)], ResolverError> {
        var records: [(address: ResolvedAddress, ttlSeconds: Int)] = []
        var transportFailure: String?
        var noRecords: String?
        for outcome in outcomes {
            switch outcome {
            case .records(let found):
                records += found.map { (ResolvedAddress(ip: $0.ip, port: port, ttl: .seconds($0.ttlSeconds)), $0.ttlSeconds) }
            case .failure(let status, let message):
                if status == ARES_ENODATA || status == ARES_ENOTFOUND {
                    noRecords = noRecords ?? message
                } else {
                    transportFailure = transportFailure ?? message
                }
            }
        }
        if !records.isEmpty { return .success(records) }
        if let transportFailure { return .failure(ResolverError(kind: .lookupFailed, name: name, reason: transportFailure)) }
        return .failure(ResolverError(kind: .noRecords, name: name, reason: noRecords ?? "no records"))
    }
}
