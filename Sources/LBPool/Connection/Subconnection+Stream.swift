import HTTPTypes
import NIOCore

/// One attempt on one subconnection failed before response headers arrived. `kind` says what
/// the server may have done with it, which is what retry decisions need.
struct AttemptFailure: Error {
    enum Kind: Equatable {
        /// The request never reached the server's processing (stream not created, above a
        /// GOAWAY's last-stream-id, or refused): safe to send again anywhere.
        case unprocessed
        /// The server may have processed it.
        case mayHaveBeenProcessed
        /// The request's deadline passed.
        case deadlineExceeded
    }

    var kind: Kind
    var underlying: any Error
    var address: ResolvedAddress
    /// Why the connection was going away, if it was.
    var closeReason: ConnectionCloseReason?
    /// The connection was closed at its drain deadline with this request open.
    var closedAtDrainDeadline = false
}

extension Subconnection {
    /// Sends `head` and `body` on a new stream and hands the response to `handle`. Failures
    /// before the response head throw ``AttemptFailure``; anything later (including what
    /// `handle` throws) is rethrown as it is.
    func execute<Result>(
        head: RequestHead,
        body: RequestBody?,
        deadline: NIODeadline,
        _ handle: (HTTPResponse, ResponseBody) async throws -> Result
    ) async throws -> Result {
        // Picked just before it started draining: a new stream would only prolong the drain.
        guard shared.isAvailable.load(ordering: .acquiring), let connected else {
            if shared.streamStarted() { drain(.streamLimitReached(shared.streamCap)) }
            throw AttemptFailure(kind: .unprocessed, underlying: LBPoolError(.connectionFailed, "not connected"), address: address)
        }
        let response = ResponseStream()
        let handler = connected.handler
        let storage = body?.storage
        var control: StreamControl?
        if case .stream = storage {
            // A streamed body is written by this task once the stream is open.
            control = try? await handler.eventLoop.submit {
                handler.value.openStream(response, head: head, body: storage, deadline: deadline)
            }.get()
        } else if handler.eventLoop.inEventLoop {
            // A task on the connection's own loop (see PoolTaskExecutor): no hop needed.
            _ = handler.value.openStream(response, head: head, body: storage, deadline: deadline)
        } else {
            handler.eventLoop.execute {
                _ = handler.value.openStream(response, head: head, body: storage, deadline: deadline)
            }
        }
        if shared.streamStarted() {
            // Queued on the event loop after every stream of the cap: the drain counts them open.
            drain(.streamLimitReached(shared.streamCap))
        }

        var bodyWriteError: (any Error)?
        if case .stream(let stream) = storage, let control {
            do {
                try await stream.send { chunk in try await control.send(chunk, end: false) }
                try await control.send(ByteBuffer(), end: true)
            } catch {
                // A server may answer before it has read the body, then reset the stream
                // (nginx does): a failed body write is only an error if no response follows.
                bodyWriteError = error
                response.closeIfOpen()
            }
        }

        let responseHead: HTTPResponse
        do {
            responseHead = try await response.head()
        } catch let failure as ResponseStream.HeadFailure {
            if failure.underlying is CancellationError { throw CancellationError() }
            let error = bodyWriteError ?? failure.underlying
            if !failure.headSent, NIODeadline.now() < deadline {
                // The head never went out: the server cannot have seen the request.
                throw AttemptFailure(kind: .unprocessed, underlying: error, address: address)
            }
            throw classify(error, streamID: failure.streamID, deadline: deadline)
        }
        defer { response.closeIfOpen() }
        return try await handle(responseHead, ResponseBody(response))
    }

    private func classify(_ error: any Error, streamID: HTTP2StreamNumber?, deadline: NIODeadline) -> AttemptFailure {
        if NIODeadline.now() >= deadline {
            return AttemptFailure(kind: .deadlineExceeded, underlying: error, address: address)
        }
        if let reset = error as? HTTP2StreamReset, reset.byServer, reset.code == HTTP2Code.refusedStream {
            // REFUSED_STREAM: the server did no processing (RFC 9113 §8.7).
            return AttemptFailure(kind: .unprocessed, underlying: error, address: address)
        }
        guard let streamID else {
            // No stream id: nothing was written.
            return AttemptFailure(kind: .unprocessed, underlying: error, address: address)
        }
        if Int(streamID) > shared.goAwayLastStreamID.load(ordering: .relaxed) {
            return AttemptFailure(kind: .unprocessed, underlying: error, address: address)
        }
        return AttemptFailure(
            kind: .mayHaveBeenProcessed, underlying: error, address: address, closeReason: shared.closing.reason,
            closedAtDrainDeadline: shared.closedAtDrainDeadline.load(ordering: .relaxed))
    }
}

/// Reading a response head, or trailers, field by field as the connection's HPACK decoder
/// hands them over. A malformed block (RFC 9113 §8.2 and §8.3) is recorded, not thrown, so that
/// the decoder still reads the whole block: its table is the connection's.
///
/// Malformed: a missing, repeated or bad `:status`, another pseudo-header, a pseudo-header after
/// a regular field, a name with upper-case letters or that is no token, a connection-specific
/// field, pseudo-headers in trailers, or more than `maxListSize` bytes of fields. Values are taken
/// as HTTPTypes takes them.
struct ResponseHead {
    enum Kind {
        case head
        case trailers
    }

    let kind: Kind
    let maxListSize: Int
    private var status: Int?
    private var fields = HTTPFields()
    private var listSize = 0
    private(set) var failure: LBPoolError?
    /// The value of `content-length`, if the response has one.
    private(set) var contentLength: String?

    init(_ kind: Kind, maxListSize: Int = 64 * 1024) {
        self.kind = kind
        self.maxListSize = maxListSize
    }

    /// Adds one field of the block; `cache` holds the fields of this connection that passed the
    /// checks lately.
    mutating func add(_ name: String, _ value: String, cache: inout ResponseFieldCache) {
        guard failure == nil else { return }
        listSize += 32 + name.utf8.count + value.utf8.count
        guard listSize <= maxListSize else {
            failure = LBPoolError(.invalidResponse, "header list larger than \(maxListSize) bytes")
            return
        }
        if name.utf8.first == UInt8(ascii: ":") {
            guard kind == .head, name == ":status", fields.isEmpty else {
                failure = LBPoolError(.invalidResponse, "unexpected pseudo-header '\(name)' in response")
                return
            }
            guard status == nil else {
                failure = LBPoolError(.invalidResponse, "repeated :status in response")
                return
            }
            guard value.utf8.count == 3, let code = Int(value), code >= 100 else {
                failure = LBPoolError(.invalidResponse, "malformed :status '\(value)'")
                return
            }
            status = code
            return
        }
        if let field = cache.field(name: name, value: value) {
            append(field)
            return
        }
        guard let fieldName = HTTPField.Name(name), !name.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else {
            failure = LBPoolError(.invalidResponse, "malformed header name '\(name)'")
            return
        }
        if isHTTP2ConnectionSpecific(name) {
            failure = LBPoolError(.invalidResponse, "connection-specific header '\(name)' in an HTTP/2 response")
            return
        }
        let field = HTTPField(name: fieldName, value: value)
        cache.remember(name: name, value: value, field: field)
        append(field)
    }

    /// Adds a field that passed the checks.
    private mutating func append(_ field: HTTPField) {
        if field.name == .contentLength {
            if let contentLength, contentLength != field.value {
                failure = LBPoolError(.invalidResponse, "conflicting content-length values '\(contentLength)' and '\(field.value)'")
                return
            }
            contentLength = field.value
        }
        if kind == .head {
            // One allocation for a typical response's fields rather than one per doubling.
            if fields.isEmpty { fields.reserveCapacity(8) }
            fields.append(field)
        }
    }

    /// The response head; throws the first problem found.
    func response() throws(LBPoolError) -> HTTPResponse {
        if let failure { throw failure }
        guard let status else { throw LBPoolError(.invalidResponse, "response without :status") }
        return HTTPResponse(status: .init(code: status), headerFields: fields)
    }
}

/// A request head as HTTP/2 sends it: the pseudo-header values worked out once, on the task
/// that executes the request; the connection's ``HeaderBlockEncoder`` writes it. Copying it
/// copies no field (`HTTPFields` is copy-on-write).
struct RequestHead: Sendable {
    var method: String
    var scheme: String
    var authority: String
    var path: String
    var fields: HTTPFields
    /// Added as `content-length` when the body's length is known and the request has none.
    var bodyLength: Int?

    init(_ request: HTTPRequest, scheme: String, authority: String, bodyLength: Int?) {
        self.method = request.method.rawValue
        self.scheme = request.scheme ?? scheme
        self.authority = request.authority ?? authority
        self.path = request.path ?? "/"
        self.fields = request.headerFields
        self.bodyLength = bodyLength
    }

    var isHead: Bool { method == "HEAD" }

    /// HPACK indexing for a field: `.disallow` (secrets) is never indexed, not even by
    /// intermediaries; `.avoid` (values that change with every request, such as request ids)
    /// stays out of the dynamic table, where it would only evict useful entries and lengthen
    /// every lookup; anything else is indexed.
    static func indexing(_ strategy: HTTPField.DynamicTableIndexingStrategy) -> HPACKIndexing {
        switch strategy {
        case .disallow: return .neverIndexed
        case .avoid: return .notIndexed
        default: return .indexed
        }
    }

    /// Every field HTTP/2 sends, pseudo-headers first (RFC 9113 §8.3); connection-specific
    /// fields, `host` (carried by `:authority`) and a `te` other than `trailers` are left out
    /// (RFC 9113 §8.2.2).
    func forEachField(_ body: (_ name: String, _ value: String, _ indexing: HPACKIndexing) -> Void) {
        forEachPseudoHeader { name, value in body(name, value, .indexed) }
        forEachRegularField(body)
    }

    /// The pseudo-headers, in the order they are sent.
    func forEachPseudoHeader(_ body: (_ name: String, _ value: String) -> Void) {
        body(":method", method)
        body(":scheme", scheme)
        body(":authority", authority)
        body(":path", path)
    }

    /// The fields after the pseudo-headers; see ``forEachField(_:)``.
    func forEachRegularField(_ body: (_ name: String, _ value: String, _ indexing: HPACKIndexing) -> Void) {
        var hasContentLength = false
        for field in fields {
            let name = field.name.canonicalName
            // Only names of these lengths need a closer look.
            switch name.utf8.count {
            case 2 where name == "te":
                if field.value.lowercased() != "trailers" { continue }
            case 4 where name == "host":
                continue
            case 7, 10, 16, 17:
                if isHTTP2ConnectionSpecific(name) { continue }
            case 14 where name == "content-length":
                hasContentLength = true
            default:
                break
            }
            body(name, field.value, Self.indexing(field.indexingStrategy))
        }
        if let bodyLength, !hasContentLength {
            body("content-length", String(bodyLength), .indexed)
        }
    }
}
