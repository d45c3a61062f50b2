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
    ])
    func malformedResponseHeadsAreNamed(fields: [(String, String)], message: String) {
        do {
            _ = try ResponseHead.parse(fields)
            Issue.record("parsed \(fields)")
        } catch {
            #expect(error.code == .invalidResponse)
            #expect(error.message.contains(message), "\(error)")
        }
    }

    @Test func trailersMayHaveNoPseudoHeadersAndOnlyLowerCaseNames() {
        #expect(ResponseHead.validTrailers([("grpc-status", "0")]))
        #expect(!ResponseHead.validTrailers([(":status", "200")]))
        #expect(!ResponseHead.validTrailers([("Grpc-Status", "0")]))
    }

    @Test func aHeaderListOverItsLimitIsMalformed() {
        var head = ResponseHead(.head, maxListSize: 100)
        head.add(":status", "200")
        head.add("x-big", String(repeating: "a", count: 60))
        #expect(head.failure?.message.contains("header list larger than 100 bytes") == true, "\(String(describing: head.failure))")
    }
}

extension ResponseHead {
    /// The response head of `fields`, in order.
    static func parse(_ fields: [(String, String)]) throws(LBPoolError) -> HTTPResponse {
        var head = ResponseHead(.head)
        for (name, value) in fields { head.add(name, value) }
        return try head.response()
    }

    /// Whether `fields` are well-formed trailers.
    static func validTrailers(_ fields: [(String, String)]) -> Bool {
        var trailers = ResponseHead(.trailers)
        for (name, value) in fields { trailers.add(name, value) }
        return trailers.failure == nil
    }
}
