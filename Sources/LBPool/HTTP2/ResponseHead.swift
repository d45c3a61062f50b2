import HTTPTypes

/// Reading a response head, or trailers, field by field as the connection's HPACK decoder
/// hands them over. A malformed block (RFC 9113 §8.2 and §8.3) is recorded, not thrown, so that
/// the decoder still reads the whole block: its table is the connection's.
///
/// Malformed: a missing, repeated or bad `:status`, another pseudo-header, a pseudo-header after
/// a regular field, a name with upper-case letters or that is no token, a connection-specific
/// field, pseudo-headers in trailers, more than `maxListSize` bytes of fields, or a value with
/// NUL, LF or CR anywhere or with a space or tab at either end (RFC 9113 §8.2.1). `:status 101`
/// is malformed too: HTTP/2 has no upgrade (§8.6).
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
    private(set) var failure: HTTP2MalformedMessage?
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
            failure = HTTP2MalformedMessage("header list larger than \(maxListSize) bytes")
            return
        }
        if name.utf8.first == UInt8(ascii: ":") {
            guard kind == .head, name == ":status", fields.isEmpty else {
                failure = HTTP2MalformedMessage("unexpected pseudo-header '\(name)' in response")
                return
            }
            guard status == nil else {
                failure = HTTP2MalformedMessage("repeated :status in response")
                return
            }
            guard value.utf8.count == 3, let code = Int(value), code >= 100 else {
                failure = HTTP2MalformedMessage("malformed :status '\(value)'")
                return
            }
            guard code != 101 else {
                failure = HTTP2MalformedMessage(":status 101, which HTTP/2 does not have")
                return
            }
            status = code
            return
        }
        if let field = cache.field(name: name, value: value) {
            append(field)
            return
        }
        if let bad = Self.invalidValueByte(value) {
            failure = HTTP2MalformedMessage("value of '\(name)' has \(bad)")
            return
        }
        guard let fieldName = HTTPField.Name(name), !name.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else {
            failure = HTTP2MalformedMessage("malformed header name '\(name)'")
            return
        }
        if isHTTP2ConnectionSpecific(name) {
            failure = HTTP2MalformedMessage("connection-specific header '\(name)' in an HTTP/2 response")
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
                failure = HTTP2MalformedMessage("conflicting content-length values '\(contentLength)' and '\(field.value)'")
                return
            }
            contentLength = field.value
        }
        // One allocation for a typical response's fields rather than one per doubling.
        if fields.isEmpty { fields.reserveCapacity(kind == .head ? 8 : 2) }
        fields.append(field)
    }

    /// What makes a field value malformed (RFC 9113 §8.2.1), named for the message; `nil` if
    /// nothing does. HTTPTypes would replace such bytes with spaces, hiding the problem.
    static func invalidValueByte(_ value: String) -> String? {
        let utf8 = value.utf8
        if let first = utf8.first, first == 0x20 || first == 0x09 { return "leading whitespace" }
        if let last = utf8.last, last == 0x20 || last == 0x09 { return "trailing whitespace" }
        if let bad = utf8.first(where: { $0 == 0x00 || $0 == 0x0A || $0 == 0x0D }) {
            return bad == 0x00 ? "a NUL byte" : bad == 0x0A ? "a line feed" : "a carriage return"
        }
        return nil
    }

    /// The trailer fields; throws the first problem found.
    func trailers() throws(HTTP2MalformedMessage) -> HTTPFields {
        if let failure { throw failure }
        return fields
    }

    /// The response head; throws the first problem found.
    func response() throws(HTTP2MalformedMessage) -> HTTPResponse {
        if let failure { throw failure }
        guard let status else { throw HTTP2MalformedMessage("response without :status") }
        return HTTPResponse(status: .init(code: status), headerFields: fields)
    }
}

/// A response that breaks HTTP/2's message rules (RFC 9113 §8.1 to §8.3): the client resets its
/// stream with PROTOCOL_ERROR. `message` names the bad field or value.
struct HTTP2MalformedMessage: Error, CustomStringConvertible {
    var message: String

    init(_ message: String) {
        self.message = message
    }

    var description: String { message }
}
