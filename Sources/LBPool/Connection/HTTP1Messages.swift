import HTTPTypes
import NIOHTTP1

extension RequestHead {
    /// The request as HTTP/1.1 sends it: `host` from the authority (HTTP types carry the host
    /// there, a `host` field is left out as over HTTP/2), the other fields as they are, and the body framed as `NIOHTTP1` expects: a known length as
    /// `content-length`, a streamed body of unknown length chunked, and `content-length: 0` on a
    /// request without body whose method means to carry one.
    func http1Head(streamedBody: Bool) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(fields.count + 2)
        headers.add(name: "host", value: authority)
        var hasLength = false
        for field in fields {
            if field.name == .contentLength { hasLength = true }
            if field.name.canonicalName == "host" { continue }
            headers.add(name: field.name.rawName, value: field.value)
        }
        if !hasLength {
            if let bodyLength {
                headers.add(name: "content-length", value: String(bodyLength))
            } else if streamedBody {
                if fields[.transferEncoding] == nil { headers.add(name: "transfer-encoding", value: "chunked") }
            } else if ["POST", "PUT", "PATCH"].contains(method) {
                headers.add(name: "content-length", value: "0")
            }
        }
        return HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path, headers: headers)
    }
}

extension HTTPFields {
    /// Fields as `NIOHTTP1` holds them; a name that is not a valid field name is left out.
    init(_ headers: HTTPHeaders) {
        self.init()
        reserveCapacity(headers.count)
        for (name, value) in headers {
            guard let name = HTTPField.Name(name) else { continue }
            append(HTTPField(name: name, value: value))
        }
    }
}

extension HTTPHeaders {
    /// Fields for `NIOHTTP1` to write (request trailers).
    init(_ fields: HTTPFields) {
        self.init()
        for field in fields { add(name: field.name.rawName, value: field.value) }
    }
}
