import NIOCore

/// An HTTP/2 stream identifier (RFC 9113 §5.1.1): 31 bits; 0 is the connection itself.
typealias HTTP2StreamNumber = UInt32

/// A frame as the client reads it, after CONTINUATION frames were joined to their HEADERS and
/// padding was removed. Frames of types the client has no use for are not reported.
enum HTTP2InboundFrame {
    /// `flowControlledLength` counts the padding as well, which flow control covers.
    case data(stream: HTTP2StreamNumber, data: ByteBuffer, endStream: Bool, flowControlledLength: Int)
    /// A whole header block, still HPACK-encoded.
    case headers(stream: HTTP2StreamNumber, block: ByteBuffer, endStream: Bool)
    case rstStream(stream: HTTP2StreamNumber, code: HTTP2Code)
    case settings([(identifier: UInt16, value: UInt32)])
    case settingsAck
    case ping(opaque: UInt64, ack: Bool)
    case goAway(lastStreamID: HTTP2StreamNumber, code: HTTP2Code, debugData: ByteBuffer)
    case windowUpdate(stream: HTTP2StreamNumber, increment: UInt32)
}

/// A violation of HTTP/2 that ends the whole connection (RFC 9113 §5.4.1): the client sends
/// GOAWAY with `code` and closes.
struct HTTP2ConnectionError: Error, CustomStringConvertible {
    var code: HTTP2Code
    var message: String

    var description: String { "HTTP/2 \(code): \(message)" }
}

/// A stream ended by RST_STREAM, from the server or from the client's own protocol checks.
struct HTTP2StreamReset: Error, CustomStringConvertible {
    var stream: HTTP2StreamNumber
    var code: HTTP2Code
    /// Whether the server sent it.
    var byServer: Bool

    var description: String {
        "stream \(stream) reset by \(byServer ? "the server" : "the client") with \(code)"
    }
}

/// Frame type and flag values of RFC 9113 §6.
enum HTTP2FrameType {
    static let data: UInt8 = 0x0
    static let headers: UInt8 = 0x1
    static let priority: UInt8 = 0x2
    static let rstStream: UInt8 = 0x3
    static let settings: UInt8 = 0x4
    static let pushPromise: UInt8 = 0x5
    static let ping: UInt8 = 0x6
    static let goAway: UInt8 = 0x7
    static let windowUpdate: UInt8 = 0x8
    static let continuation: UInt8 = 0x9

    static let endStream: UInt8 = 0x1
    static let ack: UInt8 = 0x1
    static let endHeaders: UInt8 = 0x4
    static let padded: UInt8 = 0x8
    static let priorityFlag: UInt8 = 0x20
}

/// SETTINGS identifiers of RFC 9113 §6.5.2.
enum HTTP2SettingID {
    static let headerTableSize: UInt16 = 0x1
    static let enablePush: UInt16 = 0x2
    static let maxConcurrentStreams: UInt16 = 0x3
    static let initialWindowSize: UInt16 = 0x4
    static let maxFrameSize: UInt16 = 0x5
    static let maxHeaderListSize: UInt16 = 0x6
}

/// The largest flow-control window HTTP/2 allows (RFC 9113 §6.9.1).
let http2MaxWindow = Int(Int32.max)

/// Whether a (lower-case) field name is connection-specific, which HTTP/2 does not allow
/// (RFC 9113 §8.2.2): dropped from requests, malformed in responses.
func isHTTP2ConnectionSpecific(_ name: String) -> Bool {
    // Only these lengths can match; most names are ruled out without comparing.
    switch name.utf8.count {
    case 7: return name == "upgrade"
    case 10: return name == "connection" || name == "keep-alive"
    case 16: return name == "proxy-connection"
    case 17: return name == "transfer-encoding"
    default: return false
    }
}
