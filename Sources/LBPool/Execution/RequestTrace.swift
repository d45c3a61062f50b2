import HTTPTypes
import Synchronization
import Tracing

/// The spans of one request, as OpenTelemetry's HTTP client conventions name them: one span for
/// the request, from the call until the response is handled or the request fails, and one child
/// span per attempt that got a connection, whose context is injected into that attempt's header
/// fields. Both are of kind `client` and named for the method. A duplex stream's reopening
/// (another task) reaches it too, hence the lock.
///
/// Events: `lbpool.resend` on the request when an unprocessed attempt is sent again,
/// `lbpool.retry` when a failed attempt is retried (with `lbpool.retry.delay_ms`), and
/// `lbpool.goaway` on an attempt that a GOAWAY cut short (with its code and last-stream-id).
final class RequestTrace: Sendable {
    private struct State {
        var attempt: (any Span)?
        /// Attempts so far that got a connection.
        var attempts = 0
        /// The status of the latest response head.
        var status: Int?
    }

    private let tracer: any Tracer
    private let request: HTTPRequest
    private let span: any Span
    private let host: String
    private let port: Int
    private let state = Mutex(State())

    init(tracer: any Tracer, request: HTTPRequest, target: Target) {
        self.tracer = tracer
        self.request = request
        self.host = target.host
        self.port = target.port
        let span = tracer.startSpan(request.method.rawValue, context: .current ?? .topLevel, ofKind: .client)
        span.attributes["http.request.method"] = request.method.rawValue
        span.attributes["server.address"] = target.host
        span.attributes["server.port"] = target.port
        span.attributes["url.scheme"] = target.scheme.rawValue
        self.span = span
    }

    /// Starts the span of an attempt on `address` and returns the head to send, with the
    /// attempt's context injected into its fields.
    func attemptStarted(on address: ResolvedAddress, scheme: String, authority: String, bodyLength: Int?) -> RequestHead {
        let method = request.method.rawValue
        let attempt = tracer.startSpan(method, context: span.context, ofKind: .client)
        attempt.attributes["http.request.method"] = method
        attempt.attributes["server.address"] = host
        attempt.attributes["server.port"] = port
        attempt.attributes["network.peer.address"] = address.ip
        attempt.attributes["network.peer.port"] = address.port
        let earlier = state.withLock { state in
            defer {
                state.attempts += 1
                state.attempt = attempt
            }
            return state.attempts
        }
        if earlier > 0 { attempt.attributes["http.request.resend_count"] = earlier }
        var traced = request
        tracer.inject(attempt.context, into: &traced.headerFields, using: HTTPFieldsInjector())
        return RequestHead(traced, scheme: scheme, authority: authority, bodyLength: bodyLength)
    }

    /// The attempt's response head arrived.
    func attemptAnswered(status: Int) {
        let attempt = state.withLock { state in
            state.status = status
            return state.attempt
        }
        guard let attempt else { return }
        attempt.attributes["http.response.status_code"] = status
        if status >= 400 {
            attempt.attributes["error.type"] = "\(status)"
            attempt.setStatus(SpanStatus(code: .error))
        }
    }

    /// The attempt ended: its response was handled, or it failed with `error`.
    func attemptEnded(_ error: LBPoolError? = nil, goAway: ConnectionCloseReason? = nil) {
        let attempt = state.withLock { state in
            defer { state.attempt = nil }
            return state.attempt
        }
        guard let attempt else { return }
        if case .goAway(let code, let lastStreamID, _) = goAway {
            attempt.addEvent(
                SpanEvent(
                    name: "lbpool.goaway",
                    attributes: ["http2.goaway.error_code": .string("\(code)"), "http2.goaway.last_stream_id": .int64(Int64(lastStreamID))]))
        }
        if let error {
            attempt.attributes["error.type"] = error.code.description
            attempt.recordError(error)
            attempt.setStatus(SpanStatus(code: .error, message: error.message))
        }
        attempt.end()
    }

    /// The attempt was not processed and is sent again.
    func resending(after error: LBPoolError) {
        span.addEvent(SpanEvent(name: "lbpool.resend", attributes: ["lbpool.resend.reason": .string(error.message)]))
    }

    /// A failed attempt is retried after `delay`.
    func retrying(after delay: Duration, reason: String) {
        span.addEvent(
            SpanEvent(name: "lbpool.retry", attributes: ["lbpool.retry.delay_ms": .int64(Int64(delay.milliseconds)), "lbpool.retry.reason": .string(reason)]))
    }

    /// The request ended with the latest response handed to the caller and handled.
    func finished() {
        attemptEnded()
        guard let status = state.withLock({ $0.status }) else { return span.end() }
        span.attributes["http.response.status_code"] = status
        if status >= 400 {
            span.attributes["error.type"] = "\(status)"
            span.setStatus(SpanStatus(code: .error))
        }
        span.end()
    }

    /// The request failed with `error` (the pool's, or the caller's handler's).
    func failed(_ error: any Error) {
        let poolError = error as? LBPoolError
        attemptEnded(poolError)
        span.attributes["error.type"] = poolError?.code.description ?? "\(type(of: error))"
        span.recordError(error)
        span.setStatus(SpanStatus(code: .error, message: poolError?.message))
        span.end()
    }
}

/// Writes a tracer's propagation fields (W3C `traceparent`, for one) into a request's fields.
/// Their values change with every request, so they are kept out of the HPACK dynamic table.
struct HTTPFieldsInjector: Injector {
    func inject(_ value: String, forKey key: String, into fields: inout HTTPFields) {
        guard let name = HTTPField.Name(key) else { return }
        var field = HTTPField(name: name, value: value)
        field.indexingStrategy = .avoid
        fields[fields: name] = [field]
    }
}
