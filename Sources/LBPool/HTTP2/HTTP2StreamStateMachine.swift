import HTTPTypes

/// One request stream of a client connection, as RFC 9113 §5.1 describes it from the client's
/// side, with what the response may still send: its head, body bytes within the stream's
/// inbound window and its content-length, and trailers. A value type with no I/O: the
/// connection feeds it the frames of its stream and what the caller does, and does what the
/// outcomes say.
///
/// ```
///                     HEADERS sent
///                          │
///                          ▼
///   END_STREAM sent ┌─── open ───┐ END_STREAM received
///                   ▼            ▼
///         half-closed (local)  half-closed (remote)
///                   │            │
///                   └─▶ closed ◀─┘  END_STREAM the other way
///
///   any state ── RST_STREAM received ──▶ closed
///   (a stream the client resets is dropped with its machine at once)
/// ```
///
/// The response moves from awaiting its head (1xx heads are skipped) to its body, and may end
/// with trailers, which carry END_STREAM.
struct HTTP2StreamStateMachine {
    enum State: Equatable {
        case open
        case halfClosedLocal
        case halfClosedRemote
        case closed
    }

    enum Response: Equatable {
        case awaitingHead
        case body
        /// The body ended (with or without trailers).
        case complete
    }

    /// A stream error (RFC 9113 §5.4.2): the client resets the stream with `code`.
    struct StreamError: Error, Equatable, CustomStringConvertible {
        var code: HTTP2Code
        var message: String

        var description: String { "\(code): \(message)" }
    }

    private(set) var state: State
    private(set) var response = Response.awaitingHead
    /// HEAD requests get no body, whatever content-length says.
    let isHeadRequest: Bool
    /// How much more body the server may send before the reader opens the window again.
    private(set) var receiveWindow: Int
    /// The response's content-length, checked against the body that arrives.
    private(set) var expectedLength: Int?
    private(set) var receivedLength = 0

    /// A stream whose HEADERS were written; `endStreamSent` when they carried END_STREAM.
    init(endStreamSent: Bool, isHeadRequest: Bool, receiveWindow: Int) {
        self.state = endStreamSent ? .halfClosedLocal : .open
        self.isHeadRequest = isHeadRequest
        self.receiveWindow = receiveWindow
    }

    /// Whether the server may still send on the stream.
    var remoteOpen: Bool { state == .open || state == .halfClosedLocal }
    /// What the server has left to send of a body whose length it declared; `nil` while the
    /// length is not known.
    var bodyBytesLeft: Int? { expectedLength.map { $0 - receivedLength } }
    /// Whether the client may still send on the stream.
    var localOpen: Bool { state == .open || state == .halfClosedRemote }
    /// The next header block of the stream is trailers, not a head.
    var expectsTrailers: Bool { response == .body }

    // MARK: - Frames from the server

    enum HeadersOutcome: Equatable {
        /// A 1xx head: the final one follows.
        case informational
        /// The final head; with `endStream`, the response (with no body) is complete.
        case head(HTTPResponse, endStream: Bool)
        /// Trailers: the body is complete.
        case trailers(HTTPFields)
    }

    /// A header block of this stream, decoded into `fields` (a head or trailers, as
    /// ``expectsTrailers`` said).
    mutating func headersReceived(_ fields: ResponseHead, endStream: Bool) throws(StreamError) -> HeadersOutcome {
        guard remoteOpen else {
            throw StreamError(code: .streamClosed, message: "HEADERS after the end of the stream")
        }
        if response == .body {
            guard endStream else {
                throw protocolError("trailers without END_STREAM")
            }
            let trailers: HTTPFields
            do { trailers = try fields.trailers() } catch { throw protocolError("malformed trailers: \(error)") }
            try remoteEnded()
            return .trailers(trailers)
        }
        let head: HTTPResponse
        do { head = try fields.response() } catch { throw protocolError(error.message) }
        if head.status.kind == .informational {
            if endStream { throw protocolError("the stream ended after a \(head.status.code) response") }
            return .informational
        }
        response = .body
        if !isHeadRequest, head.status.code != 204, head.status.code != 304, let length = fields.contentLength {
            guard let expected = Int(length), expected >= 0 else {
                throw protocolError("malformed content-length '\(length)'")
            }
            expectedLength = expected
        }
        if endStream { try remoteEnded() }
        return .head(head, endStream: endStream)
    }

    /// A DATA frame of `length` body bytes that used `flowControlledLength` of the window
    /// (padding included). Returns whether the body ended with it.
    mutating func dataReceived(length: Int, flowControlledLength: Int, endStream: Bool) throws(StreamError) -> Bool {
        guard remoteOpen else {
            // RFC 9113 §6.1: DATA on a stream that is not open or half-closed (local).
            throw StreamError(code: .streamClosed, message: "DATA after the end of the stream")
        }
        guard response == .body else {
            throw protocolError("DATA before the response HEADERS")
        }
        receiveWindow -= flowControlledLength
        guard receiveWindow >= 0 else {
            throw StreamError(code: .flowControlError, message: "DATA beyond the stream's window")
        }
        receivedLength += length
        if let expectedLength, receivedLength > expectedLength {
            throw protocolError("body of more than \(expectedLength) bytes, its content-length")
        }
        if endStream { try remoteEnded() }
        return endStream
    }

    /// The server reset the stream with `code`. Returns true when the response is complete all
    /// the same: a reset with NO_ERROR after the whole response (RFC 9113 §8.1 lets a server
    /// stop an upload that way), counting a body whose declared content-length arrived in full
    /// as whole, though the server sent no END_STREAM.
    mutating func resetReceived(_ code: HTTP2Code) -> Bool {
        defer { state = .closed }
        guard code == .noError else { return false }
        if response == .complete { return true }
        if response == .body, let expectedLength, receivedLength == expectedLength {
            response = .complete
            return true
        }
        return false
    }

    // MARK: - What the client does

    /// The client sent END_STREAM.
    mutating func endSent() {
        switch state {
        case .open: state = .halfClosedLocal
        case .halfClosedRemote: state = .closed
        case .halfClosedLocal, .closed: break
        }
    }

    /// The reader took `bytes` of the body; returns the increment of a WINDOW_UPDATE to send,
    /// or `nil` when none is needed: the server will send no more, or the window already holds
    /// what its content-length has left, plus ``paddingSlack``. Past that, an update would only
    /// be written to a server that may be closing the connection after its last DATA frame.
    mutating func bodyConsumed(_ bytes: Int) -> Int? {
        guard bytes > 0, remoteOpen else { return nil }
        var increment = bytes
        if let expectedLength {
            let needed = expectedLength - receivedLength + Self.paddingSlack
            increment = min(bytes, needed - receiveWindow)
            guard increment > 0 else { return nil }
        }
        receiveWindow += increment
        return increment
    }

    /// Window kept beyond a declared body's remaining bytes: room for the padding of its last
    /// frames (at most 256 bytes a frame), so that a server that pads is never held back.
    static let paddingSlack = 16_384

    /// Padding of a DATA frame never reaches the reader: its window is given back at once.
    mutating func paddingDiscarded(_ bytes: Int) -> Int? {
        guard bytes > 0, remoteOpen else { return nil }
        receiveWindow += bytes
        return bytes
    }

    // MARK: - Helpers

    private mutating func remoteEnded() throws(StreamError) {
        if let expectedLength, receivedLength != expectedLength {
            throw protocolError("body of \(receivedLength) bytes, content-length says \(expectedLength)")
        }
        response = .complete
        switch state {
        case .open: state = .halfClosedRemote
        case .halfClosedLocal: state = .closed
        case .halfClosedRemote, .closed: break
        }
    }

    private func protocolError(_ message: String) -> StreamError {
        StreamError(code: .protocolError, message: message)
    }
}
