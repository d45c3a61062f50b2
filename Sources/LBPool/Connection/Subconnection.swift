import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// What a subconnection needs to dial; the same for every subconnection of a pool.
struct ConnectionSettings: Sendable {
    /// The protocol every connection speaks.
    enum WireProtocol: Sendable, Equatable {
        case http2
        case http1
        /// ALPN `h2`, else HTTP/1.1 (TLS only).
        case negotiated
    }

    var eventLoopGroup: any EventLoopGroup
    var wireProtocol = WireProtocol.http2
    /// Present for `https` targets.
    var tlsContext: NIOSSLContext?
    /// The name used for SNI and certificate checks: the target's host, never the IP.
    var serverHostname: String?
    var connectTimeout: Duration
    /// A draining connection is closed at this deadline even with streams open.
    var drainTimeout: Duration
    var keepalive: KeepaliveSettings?
    var limits = HTTP2ClientLimits()
    var logger: Logger
}

/// HTTP/2 PING keepalive of a connection (from ``LBPool/Configuration/Keepalive``).
struct KeepaliveSettings: Sendable, Hashable {
    var interval: Duration
    var timeout: Duration
    /// Also PING a connection with no open stream.
    var permitWithoutStreams: Bool
}

/// The parts of a subconnection read off the event loop, each safe on its own.
final class SubconnectionShared: Sendable {
    /// Requests the pool is sending on this connection and has not finished.
    let inFlight = Atomic<Int>(0)
    /// Ready and not draining: may take new streams.
    let isAvailable = Atomic<Bool>(false)
    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS.
    let maxConcurrentStreams = Atomic<Int>(100)
    /// The lowest last-stream-id of the GOAWAYs received; `Int.max` before any.
    let goAwayLastStreamID = Atomic<Int>(.max)
    /// Fires when the connection starts to go away; carries the reason.
    let closing = ConnectionClosingSignal()
    /// Set when a draining connection was closed at its drain deadline with streams open.
    let closedAtDrainDeadline = Atomic<Bool>(false)
    /// Streams opened by a task on another thread than the connection's event loop, each a
    /// handoff between threads (see ``PoolTaskExecutor``).
    let handoffs = Atomic<Int>(0)
    /// Streams this connection may open in all (see ``StreamCapEstimate``); `Int.max` when the
    /// server's cap is not known.
    let streamCap: Int
    /// Stream slots taken so far, counted only under a cap (failed tries overshoot it).
    let streamsReserved = Atomic<Int>(0)
    /// Reserved slots used (a stream opened, or the attempt gave up), counted only under a cap.
    let streamsStarted = Atomic<Int>(0)
    /// The address's open-connection counts (OpenTelemetry's `http.client.open_connections`).
    let usage: ConnectionUsage?
    /// Counted among the open connections in ``usage``.
    private let countedOpen = Atomic<Bool>(false)
    /// Counted among the active ones.
    private let countedActive = Atomic<Bool>(false)

    init(streamCap: Int?, usage: ConnectionUsage? = nil) {
        self.streamCap = streamCap ?? .max
        self.usage = usage
    }

    /// The connection became ready: it counts as open (idle until a request takes a stream).
    func opened() {
        guard let usage, countedOpen.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        if inFlight.load(ordering: .relaxed) > 0, countedActive.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            usage.becameActive()
        }
        usage.opened()
    }

    /// The connection closed: it no longer counts.
    func closed() {
        guard let usage, countedOpen.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged else { return }
        usage.closed(wasActive: countedActive.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged)
    }

    private func becameActive() {
        guard let usage, countedOpen.load(ordering: .relaxed),
            countedActive.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
        else { return }
        usage.becameActive()
    }

    private func becameIdle() {
        guard let usage, countedActive.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged else { return }
        usage.becameIdle()
    }

    /// Takes one stream slot if the server's limits leave one; ``release()`` gives it back.
    func tryReserve() -> Bool {
        var current = inFlight.load(ordering: .relaxed)
        while true {
            guard current < maxConcurrentStreams.load(ordering: .relaxed) else { return false }
            let (exchanged, original) = inFlight.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
        if streamCap != .max, streamsReserved.wrappingAdd(1, ordering: .relaxed).newValue > streamCap {
            inFlight.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        if current == 0, usage != nil { becameActive() }
        return true
    }

    /// Records that a reserved slot was used; returns true to the one caller that used the
    /// cap's last slot, which then drains the connection. Every stream under the cap was handed
    /// to the event loop before that caller's drain is.
    func streamStarted() -> Bool {
        streamCap != .max && streamsStarted.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue == streamCap
    }

    /// Gives back a slot; returns whether the connection was full before.
    func release() -> Bool {
        let old = inFlight.wrappingSubtract(1, ordering: .relaxed).oldValue
        if old == 1, usage != nil { becameIdle() }
        return old >= maxConcurrentStreams.load(ordering: .relaxed)
    }
}

/// One connection to one address: HTTP/2 (h2c with prior knowledge, or TLS with ALPN `h2`) or
/// HTTP/1.1 (plain, or TLS with ALPN `http/1.1`), as the pool's settings say.
///
/// A subconnection is dialled once; after it closes, the balancer makes a new one (with a new
/// ``SubconnectionID``) if the endpoint still needs it.
final class Subconnection: Sendable {
    struct Connected: Sendable {
        var channel: any Channel
        /// `nil` until TLS negotiated the protocol (``ConnectionSettings/WireProtocol/negotiated``).
        var handler: WireHandler?
    }

    private enum Phase {
        case idle
        case connected(Connected)
        /// Drain was asked for before the dial finished; applied as soon as it does.
        case drainPending(ConnectionCloseReason)
    }

    let id: SubconnectionID
    let address: ResolvedAddress
    let createdAt = ContinuousClock.now
    let shared: SubconnectionShared
    private let phase = Mutex<Phase>(.idle)

    /// The passive-health counter of the address, when outlier detection is on.
    let health: OutcomeCounter?

    /// - Parameter streamCap: Streams to open on this connection at most, when its server's
    ///   per-connection cap is known.
    /// - Parameter eventLoop: The loop to dial it on; `nil`: the group's next.
    init(
        id: SubconnectionID, address: ResolvedAddress, health: OutcomeCounter? = nil, streamCap: Int? = nil,
        eventLoop: (any EventLoop)? = nil, usage: ConnectionUsage? = nil
    ) {
        self.id = id
        self.address = address
        self.health = health
        self.shared = SubconnectionShared(streamCap: streamCap, usage: usage)
        self.eventLoop = eventLoop
        self.eventLoopID = eventLoop.map { ObjectIdentifier($0) }
    }

    /// The event loop it was placed on, when the balancer chose one.
    let eventLoop: (any EventLoop)?
    /// The identity of ``eventLoop``, compared on the pick path.
    let eventLoopID: ObjectIdentifier?

    /// The dialled connection, once there is one.
    var connected: Connected? {
        phase.withLock { phase in
            if case .connected(let connected) = phase { return connected }
            return nil
        }
    }

    /// Each stream's inbound window (SETTINGS_INITIAL_WINDOW_SIZE): how far a server may send a
    /// response body ahead of its reader.
    static let streamWindow = 1 << 20
    /// The connection's inbound window, shared by its streams.
    static let connectionWindow = 4 << 20

    /// Dials, then waits until the connection closes. Reports every state change to `delegate`.
    /// Cancelling the calling task closes the connection at once.
    func run(settings: ConnectionSettings, delegate: any SubconnectionDelegate) async {
        let connected: Connected
        do {
            connected = try await dial(settings: settings, delegate: delegate)
        } catch {
            delegate.subconnection(id, address: address, didReport: .closed(.connectionError("\(error)"), wasReady: false))
            return
        }
        await withTaskCancellationHandler {
            try? await connected.channel.closeFuture.get()
        } onCancel: {
            connected.channel.close(promise: nil)
        }
    }

    /// Records the dialled connection; returns a drain asked for while dialling.
    private func publish(_ connected: Connected) -> ConnectionCloseReason? {
        phase.withLock { phase in
            defer { phase = .connected(connected) }
            if case .drainPending(let reason) = phase { return reason }
            return nil
        }
    }

    /// Stops new streams; the connection closes when its open streams end.
    func drain(_ reason: ConnectionCloseReason) {
        let connected = phase.withLock { phase -> Connected? in
            switch phase {
            case .connected(let connected): return connected
            case .idle: phase = .drainPending(reason); return nil
            case .drainPending: return nil
            }
        }
        guard let connected else { return }
        connected.channel.eventLoop.execute {
            connected.handler?.drain(reason)
        }
    }

    private func dial(settings: ConnectionSettings, delegate: any SubconnectionDelegate) async throws -> Connected {
        let target = try SocketAddress(ipAddress: address.ip, port: address.port)
        let timeout = TimeAmount.nanoseconds(Int64(clamping: settings.connectTimeout.milliseconds) * 1_000_000)
        let bootstrap = ClientBootstrap(group: eventLoop ?? settings.eventLoopGroup)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        return try await bootstrap.connect(to: target) { channel in
            channel.eventLoop.makeCompletedFuture {
                let sync = channel.pipeline.syncOperations
                if let tlsContext = settings.tlsContext {
                    try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: settings.serverHostname))
                }
                switch settings.wireProtocol {
                case .http2:
                    return try self.installHTTP2(on: channel, settings: settings, delegate: delegate, requiresALPN: settings.tlsContext != nil)
                case .http1:
                    return try self.installHTTP1(on: channel, settings: settings, delegate: delegate, awaitsHandshake: settings.tlsContext != nil)
                case .negotiated:
                    // The protocol is known once TLS negotiated it (h2, else HTTP/1.1); the
                    // handler holds reads back until its handlers are in place.
                    let handshakeTimeout = channel.eventLoop.scheduleTask(in: timeout) {
                        channel.close(promise: nil)
                    }
                    try sync.addHandler(
                        ApplicationProtocolNegotiationHandler { result in
                            handshakeTimeout.cancel()
                            return channel.eventLoop.makeCompletedFuture {
                                if result == .negotiated("h2") {
                                    _ = try self.installHTTP2(on: channel, settings: settings, delegate: delegate, requiresALPN: false)
                                } else {
                                    _ = try self.installHTTP1(on: channel, settings: settings, delegate: delegate, awaitsHandshake: false)
                                }
                            }
                        })
                    return Connected(channel: channel, handler: nil)
                }
            }
        }
    }

    /// Adds the HTTP/2 handler and publishes the connection, on the event loop before any frame
    /// is read, so that it is there for requests by the time the handler reports `ready`.
    private func installHTTP2(
        on channel: any Channel, settings: ConnectionSettings, delegate: any SubconnectionDelegate, requiresALPN: Bool
    ) throws -> Connected {
        let handler = ConnectionHandler(
            id: id,
            address: address,
            shared: shared,
            delegate: delegate,
            requiresALPN: requiresALPN,
            readyTimeout: settings.connectTimeout,
            drainTimeout: settings.drainTimeout,
            keepalive: settings.keepalive,
            streamWindow: Self.streamWindow,
            connectionWindowTarget: Self.connectionWindow,
            limits: settings.limits,
            logger: settings.logger
        )
        // The handler speaks HTTP/2 on the bytes (after TLS, if any).
        try channel.pipeline.syncOperations.addHandler(handler)
        let connected = Connected(channel: channel, handler: .http2(NIOLoopBound(handler, eventLoop: channel.eventLoop)))
        if let pendingDrain = publish(connected) { handler.drain(pendingDrain) }
        return connected
    }

    /// Adds NIOHTTP1's codec and the HTTP/1.1 handler, and publishes the connection.
    /// `awaitsHandshake`: the connection is ready once TLS completed its handshake.
    private func installHTTP1(
        on channel: any Channel, settings: ConnectionSettings, delegate: any SubconnectionDelegate, awaitsHandshake: Bool
    ) throws -> Connected {
        let sync = channel.pipeline.syncOperations
        // NIOHTTP1 frames and parses the messages; the handler carries the requests. Requests
        // were checked already (LBPool.validate; HTTPTypes admits no CR or LF in a field).
        try sync.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
        let handler = HTTP1ConnectionHandler(
            id: id, address: address, shared: shared, delegate: delegate, awaitsHandshake: awaitsHandshake,
            readyTimeout: settings.connectTimeout, drainTimeout: settings.drainTimeout, logger: settings.logger)
        try sync.addHandler(handler)
        let connected = Connected(channel: channel, handler: .http1(NIOLoopBound(handler, eventLoop: channel.eventLoop)))
        if let pendingDrain = publish(connected) { handler.drain(pendingDrain) }
        return connected
    }
}
