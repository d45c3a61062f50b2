import HTTPTypes
import NIOCore

extension LBPool {
    /// A response whose body is read as it arrives.
    public struct StreamingResponse {
        /// Status and header fields.
        public var head: HTTPResponse
        /// The body; read it inside the closure that received the response.
        public var body: ResponseBody
        /// The address that served the request.
        public var servedBy: ResolvedAddress
        /// Fires when the connection carrying this stream starts to go away.
        public var connectionClosing: ConnectionClosingSignal
    }

    /// A response with its whole body.
    public struct Response: Sendable {
        public var head: HTTPResponse
        public var body: ByteBuffer
        public var servedBy: ResolvedAddress
    }

    /// Sends `request` to one of the target's addresses and hands the response to `handle`
    /// as soon as its head arrives. The stream stays open until `handle` returns.
    ///
    /// The request's scheme and authority default to the target's. A request that the server
    /// never processed (stream above a GOAWAY's last-stream-id, REFUSED_STREAM, or lost before
    /// it was sent) is sent again on another connection, up to
    /// ``Configuration/maxTransparentRetries`` times; nothing else is retried.
    ///
    /// - Parameters:
    ///   - request: The request head.
    ///   - body: The request body, or `nil` for none.
    ///   - timeout: Deadline until the response head arrives, including any wait for a ready
    ///     endpoint. Default: ``Configuration/requestTimeout``.
    ///   - handle: Reads the response; what it returns, `execute` returns.
    /// - Throws: ``LBPoolError``, or what `handle` throws.
    public func execute<Result>(
        _ request: HTTPRequest,
        body: ByteBuffer? = nil,
        timeout: Duration? = nil,
        _ handle: (StreamingResponse) async throws -> Result
    ) async throws -> Result {
        let timeout = timeout ?? configuration.requestTimeout
        guard timeout > .zero else {
            throw LBPoolError(.invalidRequest, "timeout '\(timeout)' must be greater than zero")
        }
        let deadline = ContinuousClock.now + timeout
        let nioDeadline = NIODeadline.now() + .nanoseconds(Int64(clamping: timeout.milliseconds) * 1_000_000)
        let head = RequestHead.encode(
            request,
            scheme: target.scheme.rawValue,
            authority: target.authority,
            bodyLength: body?.readableBytes
        )
        var transparentRetries = 0
        var avoid: ResolvedAddress?
        while true {
            // Comes with a stream slot reserved.
            let subconnection = try await pickSubconnection(until: deadline, avoiding: avoid)
            defer {
                // Requests may be waiting for a free stream.
                if subconnection.shared.release() { balancer.pickerState.capacityFreed() }
            }
            do {
                return try await subconnection.execute(head: head, body: body, deadline: nioDeadline) { response, responseBody in
                    try await handle(StreamingResponse(
                        head: response, body: responseBody, servedBy: subconnection.address,
                        connectionClosing: subconnection.shared.closing))
                }
            } catch let failure as AttemptFailure {
                switch failure.kind {
                case .unprocessed where transparentRetries < configuration.maxTransparentRetries:
                    transparentRetries += 1
                    avoid = failure.address
                    continue
                case .unprocessed:
                    throw LBPoolError(.connectionFailed, "request not processed after \(transparentRetries + 1) attempts",
                                      address: failure.address, underlying: failure.underlying)
                case .deadlineExceeded:
                    throw LBPoolError(.deadlineExceeded, "no response head within \(timeout)",
                                      address: failure.address, underlying: failure.underlying)
                case .mayHaveBeenProcessed:
                    var reason = failure.closeReason.map { " (connection: \($0))" } ?? ""
                    if failure.closedAtDrainDeadline { reason += "; closed at the drain deadline" }
                    throw LBPoolError(.requestFailed, "request failed after it was sent" + reason,
                                      address: failure.address, underlying: failure.underlying)
                }
            }
        }
    }

    /// Sends `request` and returns the response with its whole body (at most
    /// ``Configuration/maxCollectedBodyBytes``). See ``execute(_:body:timeout:_:)``.
    public func execute(_ request: HTTPRequest, body: ByteBuffer? = nil, timeout: Duration? = nil) async throws -> Response {
        let limit = configuration.maxCollectedBodyBytes
        return try await execute(request, body: body, timeout: timeout) { response in
            Response(head: response.head, body: try await response.body.collect(upTo: limit), servedBy: response.servedBy)
        }
    }

    /// Picks a ready subconnection with a free stream and reserves that stream, waiting for one
    /// until `deadline`. Prefers an endpoint other than `avoiding` when another is ready.
    private func pickSubconnection(until deadline: ContinuousClock.Instant, avoiding: ResolvedAddress?) async throws -> Subconnection {
        while true {
            let (snapshot, version) = balancer.pickerState.current()
            if snapshot.isShuttingDown {
                throw LBPoolError(.shutdown, "the pool for \(target) is shutting down")
            }
            let endpoints = snapshot.endpoints
            if !endpoints.isEmpty {
                var index = picker.pick(from: endpoints)
                if let avoiding, endpoints.count > 1, endpoints.storage[index].address == avoiding {
                    index = picker.pick(from: endpoints)
                }
                if let subconnection = endpoints.storage[index].leastLoadedSubconnection() {
                    if subconnection.shared.tryReserve() { return subconnection }
                    // Every connection of this address has all the streams its server allows:
                    // ask for one more connection, and meanwhile use any address with room.
                    balancer.connectionsFull(subconnection.address)
                }
                for endpoint in endpoints.storage {
                    if let subconnection = endpoint.leastLoadedSubconnection(), subconnection.shared.tryReserve() {
                        return subconnection
                    }
                }
                // All full (or all started draining since the snapshot): wait for a free stream
                // or a new connection, within the deadline.
            } else if let resolution = snapshot.resolution, resolution.addresses.isEmpty,
                      let error = resolution.error, error.kind == .noRecords {
                throw LBPoolError(.noAddresses, "\(error)", underlying: error)
            }
            if ContinuousClock.now >= deadline {
                var message = endpoints.isEmpty
                    ? "no ready connection to \(target) before the deadline"
                    : "every connection to \(target) stayed at the server's stream limit until the deadline"
                if let error = snapshot.resolution?.error { message += "; \(error)" }
                else if snapshot.resolution == nil { message += "; the name has not resolved yet" }
                if let connectionError = snapshot.lastConnectionError { message += "; last dial: \(connectionError)" }
                throw LBPoolError(.deadlineExceeded, message)
            }
            await balancer.pickerState.waitForChange(after: version, until: deadline)
            try Task.checkCancellation()
        }
    }
}
