import HTTPTypes
import NIOCore
import NIOHPACK
import NIOHTTP2

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
        head: HPACKHeaders,
        body: RequestBody?,
        deadline: NIODeadline,
        _ handle: (HTTPResponse, ResponseBody) async throws -> Result
    ) async throws -> Result {
        // Picked just before it started draining: a new stream would only prolong the drain.
        guard shared.isAvailable.load(ordering: .acquiring), let connected else {
            throw AttemptFailure(kind: .unprocessed, underlying: LBPoolError(.connectionFailed, "not connected"), address: address)
        }
        let stream: NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>
        do {
            let handler = connected.handler
            stream = try await connected.multiplexer.openStream { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Counted from here until the stream channel closes, on the event loop: the
                    // connection does not close under a stream it is about to send.
                    handler.value.streamOpened()
                    channel.closeFuture.whenComplete { _ in handler.value.streamClosed() }
                    return try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(wrappingChannelSynchronously: channel)
                }
            }
        } catch {
            throw AttemptFailure(kind: .unprocessed, underlying: error, address: address)
        }
        let channel = stream.channel
        let timer = channel.eventLoop.scheduleTask(deadline: deadline) {
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        var headReceived = false
        var headSent = false
        do {
            return try await stream.executeThenClose { inbound, outbound in
                try await outbound.write(.headers(.init(headers: head, endStream: body == nil)))
                headSent = true
                // A server may answer before it has read the body, then reset the stream
                // (nginx does): a failed body write is only an error if no response follows.
                var bodyWriteError: (any Error)?
                do {
                    switch body?.storage {
                    case .bytes(let buffer):
                        try await outbound.write(.data(.init(data: .byteBuffer(buffer), endStream: true)))
                    case .stream(let stream):
                        try await stream.send { chunk in
                            try await outbound.write(.data(.init(data: .byteBuffer(chunk), endStream: false)))
                        }
                        try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
                    case nil:
                        break
                    }
                } catch {
                    bodyWriteError = error
                }
                var iterator = inbound.makeAsyncIterator()
                let response: HTTPResponse
                do {
                    response = try await ResponseHead.read(from: &iterator)
                } catch {
                    throw bodyWriteError ?? error
                }
                timer.cancel()
                headReceived = true
                return try await handle(response, ResponseBody(.init(iterator)))
            }
        } catch {
            guard !headReceived else { throw error }
            if !headSent, NIODeadline.now() < deadline {
                // The head never went out: the server cannot have seen the request.
                throw AttemptFailure(kind: .unprocessed, underlying: error, address: address)
            }
            throw await classify(error, channel: channel, deadline: deadline)
        }
    }

    private func classify(_ error: any Error, channel: any Channel, deadline: NIODeadline) async -> AttemptFailure {
        if NIODeadline.now() >= deadline {
            return AttemptFailure(kind: .deadlineExceeded, underlying: error, address: address)
        }
        if let closed = error as? NIOHTTP2Errors.StreamClosed, closed.errorCode == .refusedStream {
            return AttemptFailure(kind: .unprocessed, underlying: error, address: address)
        }
        if error is NIOHTTP2Errors.CreatedStreamAfterGoaway {
            return AttemptFailure(kind: .unprocessed, underlying: error, address: address)
        }
        guard let streamID = try? await channel.getOption(HTTP2StreamChannelOptions.streamID) else {
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

/// Reading the response head from a stream.
enum ResponseHead {
    static func read(from iterator: inout NIOAsyncChannelInboundStream<HTTP2Frame.FramePayload>.AsyncIterator) async throws -> HTTPResponse {
        while let payload = try await iterator.next() {
            switch payload {
            case .headers(let headers):
                let response = try parse(headers.headers)
                // 1xx responses are informational; the final one follows.
                if response.status.kind != HTTPResponse.Status.Kind.informational { return response }
            case .data:
                throw LBPoolError(.invalidResponse, "DATA before the response HEADERS")
            default:
                continue
            }
        }
        throw LBPoolError(.connectionFailed, "stream closed before response headers")
    }

    static func parse(_ headers: HPACKHeaders) throws -> HTTPResponse {
        var status: Int?
        var fields = HTTPFields()
        fields.reserveCapacity(headers.count)
        for (name, value, _) in headers {
            if name.utf8.first == UInt8(ascii: ":") {
                guard name == ":status" else {
                    throw LBPoolError(.invalidResponse, "unexpected pseudo-header '\(name)' in response")
                }
                guard value.utf8.count == 3, let code = Int(value) else {
                    throw LBPoolError(.invalidResponse, "malformed :status '\(value)'")
                }
                status = code
            } else if let fieldName = HTTPField.Name(name) {
                fields.append(HTTPField(name: fieldName, value: value))
            } else {
                throw LBPoolError(.invalidResponse, "malformed header name '\(name)'")
            }
        }
        guard let status else { throw LBPoolError(.invalidResponse, "response without :status") }
        return HTTPResponse(status: .init(code: status), headerFields: fields)
    }
}

/// Writing a request head for HTTP/2.
enum RequestHead {
    /// Header fields that are connection-specific and must not appear in HTTP/2 (RFC 9113 §8.2.2).
    private static let connectionSpecific: Set<String> = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]

    static func encode(_ request: HTTPRequest, scheme: String, authority: String, bodyLength: Int?) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.reserveCapacity(request.headerFields.count + 5)
        headers.add(name: ":method", value: request.method.rawValue)
        headers.add(name: ":scheme", value: request.scheme ?? scheme)
        headers.add(name: ":authority", value: request.authority ?? authority)
        headers.add(name: ":path", value: request.path ?? "/")
        var hasContentLength = false
        for field in request.headerFields {
            let name = field.name.canonicalName
            if connectionSpecific.contains(name) { continue }
            if name == "te", field.value.lowercased() != "trailers" { continue }
            if name == "host" { continue }
            if name == "content-length" { hasContentLength = true }
            headers.add(name: name, value: field.value, indexing: field.indexingStrategy == .disallow ? .neverIndexed : .indexable)
        }
        if let bodyLength, !hasContentLength {
            headers.add(name: "content-length", value: String(bodyLength))
        }
        return headers
    }
}
