/// The life of one HTTP/2 connection, without I/O.
///
/// ```
///  connecting ──SETTINGS──▶ ready ──GOAWAY / drain──▶ draining ──last stream ends──▶ closed
///      │                     │                           │
///      └──GOAWAY / drain─────┼──────────▶ draining       └──channel closed──▶ closed
///      └──channel closed─────┴──────────────────────────────────────────────▶ closed
/// ```
///
/// Every event returns the actions the caller performs after it; the machine itself never
/// touches the channel. The connection handler owns one on its event loop.
struct SubconnectionStateMachine: Sendable {
    enum State: Sendable, Equatable {
        case connecting
        case ready
        case draining(ConnectionCloseReason)
        case closed
    }

    struct Actions: Sendable, Equatable {
        var notifyReady = false
        var notifyDraining: ConnectionCloseReason?
        var closeChannel = false
        var notifyClosed: ConnectionCloseReason?

        static let none = Actions()
    }

    private(set) var state: State = .connecting
    private(set) var openStreams = 0
    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS; 100 until it says otherwise (RFC 9113 suggests
    /// no lower than 100).
    private(set) var maxConcurrentStreams = 100
    /// The lowest last-stream-id of any GOAWAY received.
    private(set) var goAwayLastStreamID: Int?

    /// The peer's SETTINGS frame arrived: the first makes the connection ready.
    mutating func settingsReceived(maxConcurrentStreams: Int?) -> Actions {
        if let maxConcurrentStreams { self.maxConcurrentStreams = maxConcurrentStreams }
        guard state == .connecting else { return .none }
        state = .ready
        return Actions(notifyReady: true)
    }

    /// A GOAWAY arrived. The first one starts draining; a later one may only lower the
    /// last-stream-id (the connection handler treats a raise as a protocol error before this).
    mutating func goAwayReceived(lastStreamID: Int, errorCode: HTTP2Code, debugData: String) -> Actions {
        goAwayLastStreamID = min(goAwayLastStreamID ?? .max, lastStreamID)
        return startDraining(.goAway(errorCode: errorCode, lastStreamID: lastStreamID, debugData: debugData))
    }

    /// The pool wants this connection gone (address removed, rotation, shutdown): stop taking
    /// new streams and close once the open ones end.
    mutating func drainRequested(_ reason: ConnectionCloseReason) -> Actions {
        startDraining(reason)
    }

    /// The connection must close now, whatever is open (keepalive timeout, drain deadline).
    mutating func abort(_ reason: ConnectionCloseReason) -> Actions {
        switch state {
        case .connecting, .ready:
            state = .draining(reason)
            return Actions(notifyDraining: reason, closeChannel: true)
        case .draining:
            return Actions(closeChannel: true)
        case .closed:
            return .none
        }
    }

    private mutating func startDraining(_ reason: ConnectionCloseReason) -> Actions {
        switch state {
        case .connecting, .ready:
            state = .draining(reason)
            return Actions(notifyDraining: reason, closeChannel: openStreams == 0)
        case .draining, .closed:
            return .none
        }
    }

    mutating func streamOpened() {
        openStreams += 1
    }

    mutating func streamClosed() -> Actions {
        openStreams = max(openStreams - 1, 0)
        if case .draining = state, openStreams == 0 {
            return Actions(closeChannel: true)
        }
        return .none
    }

    /// The channel closed, for whatever reason. `error` describes a failure, if any.
    mutating func channelClosed(error: String?) -> Actions {
        switch state {
        case .closed:
            return .none
        case .draining(let reason):
            state = .closed
            return Actions(notifyClosed: reason)
        case .connecting, .ready:
            state = .closed
            let reason = ConnectionCloseReason.connectionError(error ?? "closed by peer")
            // Going away without a GOAWAY: report draining first so listeners see one order.
            return Actions(notifyDraining: reason, notifyClosed: reason)
        }
    }
}
