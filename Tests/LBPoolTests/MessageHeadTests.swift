import HTTPTypes
import NIOHPACK
import Testing
@testable import LBPool

@Suite struct MessageHeadTests {
    @Test func requestHeadHasPseudoHeadersAndDropsConnectionSpecificFields() {
        var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/items?x=1")
        request.headerFields[.connection] = "keep-alive"
        request.headerFields[.transferEncoding] = "chunked"
        request.headerFields[HTTPField.Name("x-request-id")!] = "abc"
        var fields: [(String, String)] = []
        RequestHead(request, scheme: "http", authority: "api:8080", bodyLength: 64).forEachField { name, value, _ in
            fields.append((name, value))
        }
        let head = HPACKHeaders(fields)
        #expect(head[":method"] == ["POST"])
        #expect(head[":scheme"] == ["http"])
        #expect(head[":authority"] == ["api:8080"])
        #expect(head[":path"] == ["/items?x=1"])
        #expect(head["x-request-id"] == ["abc"])
        #expect(head["content-length"] == ["64"])
        #expect(head["connection"].isEmpty && head["transfer-encoding"].isEmpty)
        // Pseudo-headers come first (RFC 9113 §8.3).
        #expect(Array(head.map(\.name).prefix(4)) == [":method", ":scheme", ":authority", ":path"])
    }

    @Test func fieldsRepeatedFromTheCacheAreKeptAndCounted() throws {
        var cache = ResponseFieldCache()
        for round in 0..<3 {
            var head = ResponseHead(.head)
            for (name, value) in [(":status", "200"), ("server", "nginx"), ("content-length", "20"), ("x-round", "\(round)")] {
                head.add(name, value, cache: &cache)
            }
            let response = try head.response()
            #expect(response.headerFields.map(\.name.canonicalName) == ["server", "content-length", "x-round"])
            #expect(response.headerFields[.server] == "nginx")
            #expect(head.contentLength == "20")
            #expect(response.headerFields[HTTPField.Name("x-round")!] == "\(round)")
        }
        // A name refused once is refused again: nothing malformed is kept.
        for _ in 0..<2 {
            var head = ResponseHead(.head)
            head.add(":status", "200", cache: &cache)
            head.add("Server", "nginx", cache: &cache)
            #expect(head.failure?.message.contains("malformed header name 'Server'") == true)
        }
    }

    @Test func responseHeadIsParsed() throws {
        let response = try ResponseHead.parse([(":status", "503"), ("retry-after", "2")])
        #expect(response.status == .serviceUnavailable)
        #expect(response.headerFields[.retryAfter] == "2")
    }

    @Test(arguments: [
        ([("content-type", "text/plain")], "without :status"),
        ([(":status", "20")], "malformed :status '20'"),
        ([(":status", "abc")], "malformed :status 'abc'"),
        ([(":status", "200"), (":path", "/")], "pseudo-header ':path'"),
        ([(":status", "200"), (":status", "204")], "repeated :status"),
        ([("server", "x"), (":status", "200")], "pseudo-header ':status'"),
        ([(":status", "200"), ("Content-Type", "text/plain")], "malformed header name 'Content-Type'"),
        ([(":status", "200"), ("bad name", "x")], "malformed header name 'bad name'"),
        ([(":status", "200"), ("transfer-encoding", "chunked")], "connection-specific header 'transfer-encoding'"),
        ([(":status", "099")], "malformed :status '099'"),
        ([(":status", "200"), ("content-length", "5"), ("content-length", "6")], "conflicting content-length values '5' and '6'"),
    ])
    func malformedResponseHeadsAreNamed(fields: [(String, String)], message: String) {
        do {
            _ = try ResponseHead.parse(fields)
            Issue.record("parsed \(fields)")
        } catch {
            #expect(error.message.contains(message), "\(error)")
        }
    }

    static let badValues: [(String, String)] = [
        ("a\rb", "has a carriage return"), ("a\nb", "has a line feed"), ("a\u{0}b", "has a NUL byte"),
        (" a", "has leading whitespace"), ("a\t", "has trailing whitespace"),
    ]

    @Test(arguments: badValues)
    func aValueWithCRLFNULOrOuterWhitespaceIsMalformedNotCleanedUp(value: String, message: String) {
        do {
            let head = try ResponseHead.parse([(":status", "200"), ("x-field", value)])
            Issue.record("accepted \(head.headerFields)")
        } catch {
            #expect(error.message == "value of 'x-field' \(message)", "\(error)")
        }
        #expect(!ResponseHead.validTrailers([("x-field", value)]))
    }

    @Test func status101IsMalformedInHTTP2() {
        #expect(throws: HTTP2MalformedMessage.self) { try ResponseHead.parse([(":status", "101")]) }
    }

    @Test func trailersMayHaveNoPseudoHeadersAndOnlyLowerCaseNames() {
        #expect(ResponseHead.validTrailers([("grpc-status", "0")]))
        #expect(!ResponseHead.validTrailers([(":status", "200")]))
        #expect(!ResponseHead.validTrailers([("Grpc-Status", "0")]))
    }

    @Test func aHeaderListOverItsLimitIsMalformed() {
        var head = ResponseHead(.head, maxListSize: 100)
        var cache = ResponseFieldCache()
        head.add(":status", "200", cache: &cache)
        head.add("x-big", String(repeating: "a", count: 60), cache: &cache)
        #expect(head.failure?.message.contains("header list larger than 100 bytes") == true, "\(String(describing: head.failure))")
    }
}

extension ResponseHead {
    /// The response head of `fields`, in order. Parsed twice, the second time with the field
    /// cache the first filled, which must change nothing.
    static func parse(_ fields: [(String, String)]) throws(HTTP2MalformedMessage) -> HTTPResponse {
        var cache = ResponseFieldCache()
        let first = Result { () throws(HTTP2MalformedMessage) in try parse(fields, cache: &cache) }
        let second = Result { () throws(HTTP2MalformedMessage) in try parse(fields, cache: &cache) }
        #expect("\(first)" == "\(second)", "a cached field changed the outcome")
        return try first.get()
    }

    private static func parse(_ fields: [(String, String)], cache: inout ResponseFieldCache) throws(HTTP2MalformedMessage) -> HTTPResponse {
        var head = ResponseHead(.head)
        for (name, value) in fields { head.add(name, value, cache: &cache) }
        return try head.response()
    }

    /// Whether `fields` are well-formed trailers, checked as ``parse(_:)`` checks heads.
    static func validTrailers(_ fields: [(String, String)]) -> Bool {
        var cache = ResponseFieldCache()
        var outcomes: [Bool] = []
        for _ in 0..<2 {
            var trailers = ResponseHead(.trailers)
            for (name, value) in fields { trailers.add(name, value, cache: &cache) }
            outcomes.append(trailers.failure == nil)
        }
        #expect(outcomes[0] == outcomes[1], "a cached field changed the outcome")
        return outcomes[0]
    }
}
