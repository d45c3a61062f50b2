import HTTPTypes

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

    /// The size SETTINGS_MAX_HEADER_LIST_SIZE limits: the octets of every field's name and
    /// value, plus 32 for each (RFC 9113 §6.5.2).
    var headerListSize: Int {
        var size = 0
        forEachField { name, value, _ in size += 32 + name.utf8.count + value.utf8.count }
        return size
    }

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
