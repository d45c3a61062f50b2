/// An HTTP/2 error code (RFC 9113 §7), as GOAWAY and RST_STREAM carry it.
///
/// Codes this library does not know keep their value: ``description`` shows them in hex.
public struct HTTP2Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    init(_ rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// Graceful shutdown, or no error.
    public static let noError = HTTP2Code(0x0)
    public static let protocolError = HTTP2Code(0x1)
    public static let internalError = HTTP2Code(0x2)
    public static let flowControlError = HTTP2Code(0x3)
    public static let settingsTimeout = HTTP2Code(0x4)
    public static let streamClosed = HTTP2Code(0x5)
    public static let frameSizeError = HTTP2Code(0x6)
    /// The stream was not processed: safe to send again.
    public static let refusedStream = HTTP2Code(0x7)
    public static let cancel = HTTP2Code(0x8)
    public static let compressionError = HTTP2Code(0x9)
    public static let connectError = HTTP2Code(0xA)
    /// The peer is generating excessive load (RFC 9113 §10.5).
    public static let enhanceYourCalm = HTTP2Code(0xB)
    public static let inadequateSecurity = HTTP2Code(0xC)
    public static let http11Required = HTTP2Code(0xD)

    /// The RFC 9113 name (`NO_ERROR`, `PROTOCOL_ERROR`, …), or the value in hex.
    public var description: String {
        let names = [
            "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
            "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
            "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
        ]
        return rawValue < names.count ? names[Int(rawValue)] : "0x" + String(rawValue, radix: 16)
    }
}
