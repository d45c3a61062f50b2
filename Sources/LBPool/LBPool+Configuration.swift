import NIOCore
import NIOSSL
import Tracing

extension LBPool {
    /// The picker of a pool.
    public enum PickerChoice: Sendable {
        /// ``RoundRobinPicker``: each ready address in turn, from a random start.
        case roundRobin
        /// ``RandomPicker``.
        case random
        /// ``PowerOfTwoChoicesPicker``: the less loaded of two random addresses.
        case powerOfTwoChoices
        /// ``LeastLoadedPicker``: the address with the fewest requests in flight.
        case leastLoaded
        /// Your own ``Picker``.
        case custom(any Picker)

        func make() -> any Picker {
            switch self {
            case .roundRobin: return RoundRobinPicker()
            case .random: return RandomPicker()
            case .powerOfTwoChoices: return PowerOfTwoChoicesPicker()
            case .leastLoaded: return LeastLoadedPicker()
            case .custom(let picker): return picker
            }
        }
    }

    /// Settings of a pool. Every default is stated next to its setting.
    public struct Configuration: Sendable {
        /// How a request's address is chosen. Default: ``PickerChoice/roundRobin``.
        public var picker: PickerChoice = .roundRobin

        /// The HTTP version the pool speaks to every address. Default: ``HTTPVersion/http2``.
        public var httpVersion: HTTPVersion = .http2
        /// Warm connections kept to every resolved address, dialled as soon as ``LBPool/run()``
        /// starts and whenever an address appears. Default: 1 (HTTP/2 multiplexes; over HTTP/1.1
        /// more are dialled as requests need them, up to ``maxConnections``).
        public var minConnections: Int = 1
        /// Most connections per address. Beyond ``minConnections``, one more is dialled when every
        /// connection to the address has as many requests open as the server allows (over HTTP/2
        /// its SETTINGS_MAX_CONCURRENT_STREAMS, over HTTP/1.1 one); at the maximum, requests queue
        /// for a free connection within their deadline. Default: `nil`, which is 4 over HTTP/2
        /// and 32 otherwise (over HTTP/1.1 it is the most requests in flight per address).
        public var maxConnections: Int?

        /// ``maxConnections``, or its default for ``httpVersion``.
        var connectionsPerAddressLimit: Int {
            maxConnections ?? (httpVersion == .http2 ? 4 : 32)
        }

        /// What connections speak: ``HTTPVersion/negotiated`` is HTTP/1.1 without TLS.
        func wireProtocol(tls: Bool) -> ConnectionSettings.WireProtocol {
            switch httpVersion {
            case .http2: return .http2
            case .http1: return .http1
            case .negotiated: return tls ? .negotiated : .http1
            }
        }

        /// The HTTP version of a pool's connections.
        public enum HTTPVersion: Sendable, Hashable {
            /// HTTP/2: with prior knowledge on `http`, with ALPN `h2` on `https`. Requests share
            /// a connection as streams.
            case http2
            /// HTTP/1.1 on `http` and `https` (ALPN `http/1.1`), on SwiftNIO's `NIOHTTP1`: one
            /// request at a time per connection, the connection kept alive between requests, no
            /// pipelining. A connection the server closes (`Connection: close`, an HTTP/1.0
            /// response, an idle close) drains like one that received GOAWAY.
            case http1
            /// Over TLS, whichever the server picks by ALPN, offered `h2` first and then
            /// `http/1.1`: each connection speaks what its server chose. Without TLS there is
            /// nothing to negotiate with, and it is HTTP/1.1.
            case negotiated
        }
        /// Time allowed for TCP connect, TLS handshake and the server's first SETTINGS. Default: 10 s.
        public var connectTimeout: Duration = .seconds(10)
        /// Default deadline of a request, from the call until the response head arrives
        /// (including any wait for a ready endpoint). Default: 30 s.
        public var requestTimeout: Duration = .seconds(30)
        /// How often one request may be sent again because the server never processed it
        /// (GOAWAY above its stream, REFUSED_STREAM, or a connection lost before sending).
        /// Default: 10 — against servers that close connections every few requests (nginx
        /// `keepalive_requests`), a request can be refused several times in a row under load.
        public var maxTransparentRetries: Int = 10
        /// Rotate each connection after this long (make-before-break: the replacement is ready
        /// before the old one starts draining). Default: `nil`, no rotation.
        public var maxConnectionLifetime: Duration?
        /// Relative jitter of ``maxConnectionLifetime``, applied as ± this fraction so that a
        /// fleet does not reconnect in step. Default: 0.1.
        public var maxConnectionLifetimeJitter: Double = 0.1
        /// How long a draining connection (GOAWAY, rotation, address removed, shutdown) may keep
        /// its open streams before it is closed anyway. Also bounds graceful shutdown. Default: 30 s.
        public var drainTimeout: Duration = .seconds(30)
        /// Connect to only some of the resolved addresses: the ``Subset/size`` that rendezvous
        /// hashing of (``Subset/key``, address) ranks first. Default: `nil`, every address.
        ///
        /// With `C` clients, `A` addresses and ``minConnections`` `m`, the service holds `C × A × m`
        /// connections without a subset and `C × size × m` with one; each address serves about
        /// `C × size / A` clients.
        public var subset: Subset?

        /// Subsetting by rendezvous (highest-random-weight) hashing, for large fleets.
        ///
        /// The subset is stable: an address that leaves DNS changes only the subsets that held it,
        /// each of which takes the next-ranked address instead; an address that joins changes a
        /// subset by at most one address. An address that is ejected (``OutlierDetection``) or
        /// failing its health checks (``HealthCheck``) stays connected so that it can come back,
        /// and the next-ranked address stands in until it has recovered.
        public struct Subset: Sendable, Hashable {
            /// How many addresses in use this client connects to. At least 1; with fewer
            /// addresses resolved, it connects to all of them. No default.
            public var size: Int
            /// What identifies this client among the clients of the service; clients with
            /// different keys get different, evenly spread subsets, and the same key always gives
            /// the same subset of the same addresses. Pass something unique and stable, such as
            /// the pod's name. Default: `nil`, meaning the host name followed by `/` and 16
            /// random hexadecimal digits drawn when the pool is created, so that each pool (and
            /// each run) has its own subset.
            public var key: String?

            public init(size: Int, key: String? = nil) {
                self.size = size
                self.key = key
            }
        }

        /// Passive health checking. Default: on, with ``OutlierDetection/init()``'s values;
        /// `nil` turns it off.
        public var outlierDetection: OutlierDetection? = OutlierDetection()

        /// Takes an address whose requests keep failing out of the picker for a while.
        public struct OutlierDetection: Sendable, Hashable {
            /// Failures in a row that eject an address: connect failures, transport failures after
            /// sending, and the statuses in ``failureStatuses``. Default: 5.
            public var consecutiveFailures = 5
            /// Response statuses that count as failures. Default: 502, 503, 504.
            public var failureStatuses: Set<Int> = [502, 503, 504]
            /// First ejection time; it doubles with each further ejection of the address. Default: 10 s.
            public var baseEjectionTime: Duration = .seconds(10)
            /// Longest ejection. Default: 5 min.
            public var maxEjectionTime: Duration = .seconds(300)
            /// Never eject so many that fewer than this share of the addresses stays in use.
            /// Default: 0.5.
            public var minAvailableShare = 0.5

            public init() {}
        }

        /// Active health checks. Default: `nil`, off.
        public var healthCheck: HealthCheck?

        /// A GET to ``path`` on every connection at ``interval``; an address whose connections all
        /// fail takes no requests until they pass again.
        public struct HealthCheck: Sendable, Hashable {
            /// The path probed. Default: `/healthz`.
            public var path = "/healthz"
            /// Time between probes of one connection. Default: 5 s.
            public var interval: Duration = .seconds(5)
            /// A probe without response head by then fails. Default: 1 s.
            public var timeout: Duration = .seconds(1)
            /// Passing probes in a row that make a connection healthy. Default: 1.
            public var healthyThreshold = 1
            /// Failing probes in a row (no answer, or a status outside 200–399) that make a
            /// connection unhealthy. Default: 2.
            public var unhealthyThreshold = 2

            public init(path: String = "/healthz", interval: Duration = .seconds(5)) {
                self.path = path
                self.interval = interval
            }
        }

        /// HTTP/2 PING keepalive. Default: `nil`, off.
        public var keepalive: Keepalive?

        /// HTTP/2 PING keepalive: a peer that does not answer within ``timeout`` is declared dead,
        /// its streams fail, and the connection is replaced.
        public struct Keepalive: Sendable, Hashable {
            /// Time between PINGs. Default: 30 s.
            public var interval: Duration = .seconds(30)
            /// Time to wait for the PING's acknowledgement. Default: 10 s.
            public var timeout: Duration = .seconds(10)
            /// Also PING connections with no open stream. Default: `false`.
            public var permitWithoutStreams = false

            public init(interval: Duration = .seconds(30), timeout: Duration = .seconds(10), permitWithoutStreams: Bool = false) {
                self.interval = interval
                self.timeout = timeout
                self.permitWithoutStreams = permitWithoutStreams
            }
        }
        /// What a server may make a connection spend before the client closes it with GOAWAY
        /// (RFC 9113 §10.5). Default: ``HTTP2Limits/init()``'s values.
        public var http2Limits = HTTP2Limits()

        /// Limits on what one HTTP/2 server may make the client do. A server past one is closed
        /// with GOAWAY (`ENHANCE_YOUR_CALM`, or `PROTOCOL_ERROR` for a broken rule), reported
        /// as ``ConnectionCloseReason/protocolViolation(_:_:)`` in events, logged at warning,
        /// counted in `lbpool_protocol_violations_total`, and counted as a failure of its address
        /// by outlier detection.
        public struct HTTP2Limits: Sendable, Hashable {
            /// The largest decoded response header list, in bytes as HTTP/2 counts them (each
            /// field's name and value plus 32), sent as SETTINGS_MAX_HEADER_LIST_SIZE; a larger
            /// response is malformed. Default: 65 536.
            public var maxHeaderListSize = 64 * 1024
            /// CONTINUATION frames one header block may use, empty ones included (the 2024
            /// CONTINUATION flood). Default: 32.
            public var maxContinuationFrames = 32
            /// "Glitches" tolerated at once: frames harmless alone but costly in numbers (PING
            /// and SETTINGS to answer, PRIORITY, unknown types, empty DATA and CONTINUATION,
            /// DATA or HEADERS on closed streams, PING acknowledgements never asked for).
            /// Default: 1000.
            public var glitchBurst = 1000
            /// Glitches given back per second, up to ``glitchBurst``. Default: 100.
            public var glitchesPerSecond = 100
            /// PING, SETTINGS and RST_STREAM answers the client may owe while the server reads
            /// nothing (the client stops reading from a server that does not read its answers,
            /// and closes past this). Default: 10 000.
            public var maxOwedControlFrames = 10_000
            /// A response body that receives no DATA for this long fails its stream (reset with
            /// `CANCEL`; the reader's error names this setting). Default: `nil`, no limit: a
            /// long poll or a quiet event stream may wait as long as it lives.
            public var responseBodyIdleTimeout: Duration?

            public init() {}
        }

        /// Retries of requests that may have reached a server. Default: ``RetryPolicy/init()``
        /// (3 attempts, statuses 502/503/504 and transport failures, idempotent requests only,
        /// full-jitter backoff 25 ms…1 s).
        public var retryPolicy = RetryPolicy()
        /// The budget retries draw from. Default: `nil`, meaning a ``WindowedRetryBudget`` of
        /// this pool's own (20% of requests + 10 retries/s over 10 s). Give several pools the
        /// same instance to share one budget; ``UnlimitedRetryBudget`` turns it off.
        public var retryBudget: (any RetryBudget)?
        /// Largest body ``LBPool/execute(_:body:timeout:options:)`` collects. Default: 16 MiB.
        public var maxCollectedBodyBytes: Int = 16 << 20
        /// Backoff between dials of an address whose connections keep failing.
        /// Default: 1 s × 1.6 up to 120 s, ±20% jitter.
        public var reconnectBackoff = ReconnectBackoff()
        /// DNS settings, used when the target host is a name.
        public var dns = DNSResolver.Configuration()
        /// TLS settings for `https` targets; ALPN is set to `h2` (`http/1.1` with ``httpVersion``
        /// ``HTTPVersion/http1``, both with ``HTTPVersion/negotiated``), and the server name
        /// (SNI and certificate check) is the target's host. Default: `nil`, meaning
        /// `TLSConfiguration.makeClientConfiguration()` (system trust roots, full verification).
        public var tls: TLSConfiguration?
        /// The event loops for connections, and for tasks that prefer ``LBPool/taskExecutors``.
        /// Default: `nil`, meaning `MultiThreadedEventLoopGroup.singleton` (one loop per core).
        /// The pool's connections start on one loop of it, its home (the group's next, so pools
        /// sharing a group spread over it), where ``LBPool/taskExecutor`` runs; a loop whose
        /// tasks send requests gets connections of its own.
        public var eventLoopGroup: (any EventLoopGroup)?
        /// Where requests' spans go (swift-distributed-tracing): a client span per request and
        /// one per attempt, named and attributed as OpenTelemetry's HTTP client conventions say,
        /// with each attempt's context injected into its header fields. Default: `nil`, meaning
        /// `InstrumentationSystem.tracer` as the application bootstrapped it when the pool is
        /// created; with the no-op tracer (nothing bootstrapped) no span is made at all.
        public var tracer: (any Tracer)?
        /// Splits OpenTelemetry's `http.client.request.duration` histogram by
        /// `network.peer.address` (the address of the request's last attempt), as the
        /// convention allows opt-in: one series per address, so mind the cardinality of large
        /// fleets. Default: `false`.
        public var requestDurationByAddress = false

        public init() {}

        /// Checks every value, throwing an error that names the first bad one.
        public func validate() throws(LBPoolConfigurationError) {
            guard minConnections >= 1 else {
                throw .init(setting: "minConnections", value: "\(minConnections)", reason: "must be at least 1")
            }
            guard minConnections <= 1024 else {
                throw .init(setting: "minConnections", value: "\(minConnections)", reason: "must be at most 1024")
            }
            if let maxConnections, maxConnections < minConnections {
                throw .init(
                    setting: "maxConnections", value: "\(maxConnections)",
                    reason: "must be at least minConnections (\(minConnections))")
            }
            try Validate.positive(connectTimeout, "connectTimeout")
            try Validate.positive(requestTimeout, "requestTimeout")
            guard maxTransparentRetries >= 0 else {
                throw .init(setting: "maxTransparentRetries", value: "\(maxTransparentRetries)", reason: "must not be negative")
            }
            guard maxCollectedBodyBytes >= 0 else {
                throw .init(setting: "maxCollectedBodyBytes", value: "\(maxCollectedBodyBytes)", reason: "must not be negative")
            }
            if let maxConnectionLifetime { try Validate.positive(maxConnectionLifetime, "maxConnectionLifetime") }
            guard (0..<1).contains(maxConnectionLifetimeJitter) else {
                throw .init(setting: "maxConnectionLifetimeJitter", value: "\(maxConnectionLifetimeJitter)", reason: "must be in 0..<1")
            }
            try Validate.positive(drainTimeout, "drainTimeout")
            if let subset {
                guard subset.size >= 1 else {
                    throw .init(setting: "subset.size", value: "\(subset.size)", reason: "must be at least 1")
                }
                if let key = subset.key, key.isEmpty {
                    throw .init(setting: "subset.key", value: "\"\"", reason: "must not be empty (nil draws one)")
                }
            }
            if let keepalive {
                try Validate.positive(keepalive.interval, "keepalive.interval")
                try Validate.positive(keepalive.timeout, "keepalive.timeout")
            }
            if let outlierDetection {
                guard outlierDetection.consecutiveFailures >= 1 else {
                    throw .init(setting: "outlierDetection.consecutiveFailures", value: "\(outlierDetection.consecutiveFailures)", reason: "must be at least 1")
                }
                try Validate.positive(outlierDetection.baseEjectionTime, "outlierDetection.baseEjectionTime")
                guard outlierDetection.maxEjectionTime >= outlierDetection.baseEjectionTime else {
                    throw .init(
                        setting: "outlierDetection.maxEjectionTime", value: "\(outlierDetection.maxEjectionTime)",
                        reason: "must not be below outlierDetection.baseEjectionTime")
                }
                guard (0...1).contains(outlierDetection.minAvailableShare) else {
                    throw .init(setting: "outlierDetection.minAvailableShare", value: "\(outlierDetection.minAvailableShare)", reason: "must be in 0...1")
                }
            }
            if let healthCheck {
                guard healthCheck.path.hasPrefix("/") else {
                    throw .init(setting: "healthCheck.path", value: healthCheck.path, reason: "must start with /")
                }
                try Validate.positive(healthCheck.interval, "healthCheck.interval")
                try Validate.positive(healthCheck.timeout, "healthCheck.timeout")
                guard healthCheck.healthyThreshold >= 1, healthCheck.unhealthyThreshold >= 1 else {
                    throw .init(
                        setting: "healthCheck.thresholds", value: "\(healthCheck.healthyThreshold)/\(healthCheck.unhealthyThreshold)",
                        reason: "must be at least 1")
                }
            }
            guard http2Limits.maxHeaderListSize >= 1024, http2Limits.maxHeaderListSize <= Int(UInt32.max) else {
                throw .init(setting: "http2Limits.maxHeaderListSize", value: "\(http2Limits.maxHeaderListSize)", reason: "must be in 1024...4294967295")
            }
            guard http2Limits.maxContinuationFrames >= 1 else {
                throw .init(setting: "http2Limits.maxContinuationFrames", value: "\(http2Limits.maxContinuationFrames)", reason: "must be at least 1")
            }
            guard http2Limits.glitchBurst >= 1 else {
                throw .init(setting: "http2Limits.glitchBurst", value: "\(http2Limits.glitchBurst)", reason: "must be at least 1")
            }
            guard (0...1_000_000).contains(http2Limits.glitchesPerSecond) else {
                throw .init(setting: "http2Limits.glitchesPerSecond", value: "\(http2Limits.glitchesPerSecond)", reason: "must be in 0...1000000")
            }
            if let timeout = http2Limits.responseBodyIdleTimeout {
                try Validate.positive(timeout, "http2Limits.responseBodyIdleTimeout")
            }
            guard http2Limits.maxOwedControlFrames >= 1 else {
                throw .init(setting: "http2Limits.maxOwedControlFrames", value: "\(http2Limits.maxOwedControlFrames)", reason: "must be at least 1")
            }
            try retryPolicy.validate()
            try reconnectBackoff.validate()
            try dns.validate()
        }
    }
}
