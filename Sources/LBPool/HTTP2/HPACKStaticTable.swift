/// The static table of HPACK (RFC 7541 Appendix A): index 1 to 61.
enum HPACKStaticTable {
    static let entries: [(name: String, value: String)] = [
        (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
        (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
        (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
        (":status", "404"), (":status", "500"), ("accept-charset", ""), ("accept-encoding", "gzip, deflate"),
        ("accept-language", ""), ("accept-ranges", ""), ("accept", ""), ("access-control-allow-origin", ""),
        ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
        ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
        ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
        ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""),
        ("from", ""), ("host", ""), ("if-match", ""), ("if-modified-since", ""),
        ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""), ("last-modified", ""),
        ("link", ""), ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""),
        ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""),
        ("retry-after", ""), ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""),
        ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""), ("via", ""),
        ("www-authenticate", ""),
    ]

    /// The entries of one name: the index of the first, and those with a value (at most seven,
    /// so a scan beats hashing).
    struct Entries {
        var nameIndex: Int
        var values: [(value: String, index: Int)]

        func index(of value: String) -> Int? {
            for entry in values where entry.value == value { return entry.index }
            return nil
        }
    }

    static let byName: [String: Entries] = {
        var byName: [String: Entries] = [:]
        for (offset, entry) in entries.enumerated() {
            let index = offset + 1
            var found = byName[entry.name] ?? Entries(nameIndex: index, values: [])
            if !entry.value.isEmpty { found.values.append((entry.value, index)) }
            byName[entry.name] = found
        }
        return byName
    }()

    private static let method = byName[":method"]
    private static let scheme = byName[":scheme"]
    private static let path = byName[":path"]
    private static let authority = byName[":authority"]

    /// The static entries of `name`; the pseudo-headers of every request skip the hashing.
    static func entry(named name: String) -> Entries? {
        switch name {
        case ":method": return method
        case ":scheme": return scheme
        case ":path": return path
        case ":authority": return authority
        default: return byName[name]
        }
    }
}
