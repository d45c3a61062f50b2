import CoreMetrics
import HTTPTypes
import Logging
import NIOCore
import Tracing
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// A client-side load-balancing pool of HTTP/2 connections to every address of one service.
///
/// The pool resolves the target's host (with c-ares for names), keeps
/// ``Configuration/minConnections`` warm connections to **each** address, and spreads requests
/// over the addresses with a ``Picker`` (round robin by default). It follows DNS: new addresses
/// get connections and traffic, removed ones drain.
///
/// ```swift
/// let pool = try LBPool(target: "http://api.default.svc.cluster.local:8080")
/// try await withThrowingDiscardingTaskGroup { group in
///     group.addTask { try await pool.run() }
///     let response = try await pool.execute(HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/hello"))
///     print(response.head.status, response.servedBy)
///     group.cancelAll()
/// }
/// ```
///
/// All background work runs inside ``run()``; nothing outlives it. The pool is a swift-service-
/// lifecycle `Service`: graceful shutdown refuses new requests, lets open streams finish, then
/// returns. Cancelling `run()` closes every connection at once.
public final class LBPool: Service, Sendable {
    /// The parsed target.
    public let target: Target
    public let configuration: Configuration
    /// `:scheme` and `:authority` of requests that do not set their own, worked out once.
    let defaultScheme: String
    let defaultAuthority: String
    let balancer: Balancer
    let picker: any Picker
    #if TracingCompiledOut
    /// Built with the trait `TracingCompiledOut`: no tracer ever, known at compile time, so the
    /// request path has no tracing code left. The baseline `make bench` measures the cost of
    /// tracing with no tracer against.
    var tracer: (any Tracer)? { nil }
    #else
    /// `nil` when nothing traces: the request path then makes no span.
    let tracer: (any Tracer)?
    #endif
    /// The budget every retry of this pool draws from.
    public let retryBudget: any RetryBudget
    private let resolver: any Resolver
    let logger: Logger
    /// Runs tasks on the event loops of the pool's connections, saving the thread handoffs of
    /// each request; a task started from outside them starts on the pool's home loop. See
    /// ``PoolTaskExecutor``.
    public let taskExecutor: PoolTaskExecutor
    /// One executor per event loop of the pool, ``taskExecutor`` first: a task started from
    /// outside the loops on the k-th starts on the k-th loop, and the pool gives each loop whose
    /// tasks send requests its own connections. Spread tasks over them to use more than one
    /// core for the pool's work.
    public let taskExecutors: [PoolTaskExecutor]

    /// Creates a pool; nothing is dialled until ``run()``.
    ///
    /// - Parameters:
    ///   - target: `http://host[:port]` (h2c) or `https://host[:port]` (TLS). An IP literal is
    ///     used as the only address; `localhost` means 127.0.0.1 (or ::1 when DNS is IPv6-only);
    ///     any other name is resolved with ``DNSResolver``.
    ///   - configuration: Settings, validated here.
    ///   - resolver: Replaces the resolver chosen from the target.
    ///   - logger: Where the pool logs. Default: a logger labelled `lbpool`.
    ///   - metrics: Where the pool records its metrics (see the Observability article). Default:
    ///     `nil`, meaning `MetricsSystem.factory` as the application bootstrapped it.
    /// - Throws: ``LBPoolConfigurationError`` naming the bad value.
    public init(
        target: String,
        configuration: Configuration = .init(),
        resolver: (any Resolver)? = nil,
        logger: Logger = Logger(label: "lbpool"),
        metrics: (any MetricsFactory)? = nil
    ) throws(LBPoolConfigurationError) {
        let target = try Target(parsing: target)
        try configuration.validate()
        self.target = target
        self.defaultScheme = target.scheme.rawValue
        self.defaultAuthority = target.authority
        self.configuration = configuration
        self.picker = configuration.picker.make()
        #if !TracingCompiledOut
        let tracer = configuration.tracer ?? InstrumentationSystem.tracer
        self.tracer = tracer is NoOpTracer ? nil : tracer
        #endif
        self.logger = logger
        self.retryBudget = configuration.retryBudget ?? makeDefaultRetryBudget()
        if let resolver {
            self.resolver = resolver
        } else if target.isIPLiteral {
            self.resolver = StaticResolver(ips: [target.host])
        } else if target.host.lowercased() == "localhost" {
            self.resolver = StaticResolver(ips: [configuration.dns.addressFamily == .ipv6 ? "::1" : "127.0.0.1"])
        } else {
            self.resolver = try DNSResolver(configuration: configuration.dns)
        }
        var tlsContext: NIOSSLContext?
        if target.scheme == .https {
            var tls = configuration.tls ?? .makeClientConfiguration()
            switch configuration.httpVersion {
            case .http2: tls.applicationProtocols = ["h2"]
            case .http1: tls.applicationProtocols = ["http/1.1"]
            case .negotiated: tls.applicationProtocols = ["h2", "http/1.1"]
            }
            do {
                tlsContext = try NIOSSLContext(configuration: tls)
            } catch {
                throw LBPoolConfigurationError(setting: "tls", value: "\(error)", reason: "cannot build a TLS context")
            }
        }
        let eventLoopGroup = configuration.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        // Each pool has a home loop (the group's next, so pools sharing a group spread), first
        // among its loops.
        let home = eventLoopGroup.next()
        var eventLoops: [any EventLoop] = [home]
        for loop in eventLoopGroup.makeIterator() where loop !== home { eventLoops.append(loop) }
        self.taskExecutors = eventLoops.map { PoolTaskExecutor(eventLoopGroup: eventLoopGroup, home: $0) }
        self.taskExecutor = taskExecutors[0]
        let settings = ConnectionSettings(
            eventLoopGroup: eventLoopGroup,
            wireProtocol: configuration.wireProtocol(tls: tlsContext != nil),
            tlsContext: tlsContext,
            serverHostname: target.isIPLiteral ? nil : target.host,
            connectTimeout: configuration.connectTimeout,
            drainTimeout: configuration.drainTimeout,
            keepalive: configuration.keepalive.map {
                KeepaliveSettings(interval: $0.interval, timeout: $0.timeout, permitWithoutStreams: $0.permitWithoutStreams)
            },
            limits: HTTP2ClientLimits(
                maxHeaderListSize: configuration.http2Limits.maxHeaderListSize,
                maxContinuationFrames: configuration.http2Limits.maxContinuationFrames,
                glitchBurst: configuration.http2Limits.glitchBurst,
                glitchesPerSecond: configuration.http2Limits.glitchesPerSecond,
                maxOwedControlFrames: configuration.http2Limits.maxOwedControlFrames,
                responseBodyIdleTimeout: configuration.http2Limits.responseBodyIdleTimeout),
            logger: logger
        )
        self.balancer = Balancer(
            settings: BalancerStateMachine.Settings(
                minConnections: configuration.minConnections,
                maxConnections: configuration.connectionsPerAddressLimit,
                rotation: configuration.maxConnectionLifetime.map {
                    Balancer.Rotation(lifetime: $0, jitter: configuration.maxConnectionLifetimeJitter)
                },
                backoff: configuration.reconnectBackoff,
                outlierDetection: configuration.outlierDetection.map(OutlierEjection.Settings.init),
                healthThresholds: configuration.healthCheck.map {
                    BalancerStateMachine.HealthThresholds(healthy: $0.healthyThreshold, unhealthy: $0.unhealthyThreshold)
                },
                subset: configuration.subset.map { RendezvousSubset(size: $0.size, key: $0.key ?? SubsetKey.drawn()) }),
            healthProbe: configuration.healthCheck.map { check in
                Balancer.HealthProbe(
                    head: RequestHead(
                        HTTPRequest(method: .get, scheme: nil, authority: nil, path: check.path),
                        scheme: target.scheme.rawValue, authority: target.authority, bodyLength: nil),
                    interval: check.interval, timeout: check.timeout)
            },
            connector: SocketConnector(settings: settings),
            timers: EventLoopTimers(eventLoop: home),
            eventLoops: eventLoops,
            spreadsConnections: configuration.httpVersion != .http2,
            metrics: PoolMetrics(
                factory: metrics ?? MetricsSystem.factory,
                server: PoolMetrics.Server(address: target.host, port: target.port, scheme: target.scheme.rawValue),
                durationByAddress: configuration.requestDurationByAddress),
            logger: logger
        )
    }

    /// Resolves, connects and keeps the pool up until graceful shutdown (then drains and returns)
    /// or cancellation (then closes everything and returns). Call it once. It runs on the
    /// global concurrent executor (or the calling task's executor preference), never on the
    /// caller's actor.
    @concurrent
    public func run() async throws {
        logger.debug("pool starting", metadata: ["target": "\(target)"])
        await withGracefulShutdownHandler {
            await balancer.run(resolver: resolver, host: target.host, port: target.port)
        } onGracefulShutdown: {
            self.shutDown()
        }
        logger.debug("pool stopped", metadata: ["target": "\(target)"])
    }

    /// Refuses new requests from now on; open streams finish (each connection waits at most
    /// ``Configuration/drainTimeout``), then ``run()`` returns. Closing signals fire with
    /// ``ConnectionCloseReason/poolShutdown``.
    public func shutDown() {
        balancer.shutDown()
    }

    /// The pool's address and connection events from now on, until ``run()`` returns. Each call
    /// makes an independent subscription; a subscriber that falls more than 4096 events behind
    /// loses the oldest.
    public func events() -> AsyncStream<PoolEvent> {
        balancer.events.subscribe()
    }
}

extension OutlierEjection.Settings {
    init(_ detection: LBPool.Configuration.OutlierDetection) {
        self.init(
            consecutiveFailures: detection.consecutiveFailures, baseEjectionTime: detection.baseEjectionTime,
            maxEjectionTime: detection.maxEjectionTime, minAvailableShare: detection.minAvailableShare)
    }
}
