import HTTPTypes
import LBPool
import NIOCore
import NIOHTTP2
import Synchronization
import Testing

/// Messages HTTP/2 cannot carry, both ways: a malformed response, and a request path refused before sending.
@Suite(.serialized, .timeLimit(.minutes(3))) struct MalformedMessageTests: InProcessServerTesting {
    @Test func aResponseWithAnUpperCaseHeaderNameIsRefusedAsMalformed() async throws {
        let attempts = try await withAnsweringServer { request, _ in
            if request.requestID == "post-upper" {
                request.respond(headers: [("X-Upper", "1")], body: "x")
            } else {
                request.respond(body: "fine")
            }
        } _: { pool in
            var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/")
            request.headerFields[HTTPField.Name("x-request-id")!] = "post-upper"
            let error = await #expect(throws: LBPoolError.self) {
                try await pool.execute(request, body: .bytes(ByteBuffer(string: "x")))
            }
            #expect("\(String(describing: error))".contains("malformed header name 'X-Upper'"), "\(String(describing: error))")
            // The connection serves on: only the stream was reset.
            let next = try await pool.execute(HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/"))
            #expect(String(buffer: next.body) == "fine")
            #expect(next.attempts == 1)
        }
        #expect(attempts.count("post-upper") == 1, "a POST whose response was malformed is not sent again")
    }

    @Test func aPathHTTP2CannotCarryIsRefusedBeforeAnythingIsSent() async throws {
        let attempts = try await withAnsweringServer { request, _ in
            request.respond(body: "answered")
        } _: { pool in
            for path in ["", "relative/path", "*", "/a b", "/line\r\nx-injected: 1"] {
                var request = HTTPRequest(method: .get, scheme: nil, authority: nil, path: path)
                request.headerFields[HTTPField.Name("x-request-id")!] = "bad-path"
                let error = await #expect(throws: LBPoolError.self) { try await pool.execute(request) }
                #expect(error?.code == .invalidRequest)
                // HTTPTypes turns CR and LF into spaces; either way the path is refused.
                #expect(
                    error?.message.contains("path '\(path.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " "))'") == true,
                    "\(String(describing: error))")
            }
            var badAuthority = HTTPRequest(method: .get, scheme: nil, authority: "api\r\nx: 1", path: "/")
            badAuthority.headerFields[HTTPField.Name("x-request-id")!] = "bad-path"
            let authorityError = await #expect(throws: LBPoolError.self) { try await pool.execute(badAuthority) }
            #expect(
                authorityError?.message.contains("authority 'api  x: 1' is empty or contains a space or control character") == true,
                "\(String(describing: authorityError))")
            var options = HTTPRequest(method: .options, scheme: nil, authority: nil, path: "*")
            options.headerFields[HTTPField.Name("x-request-id")!] = "asterisk"
            let response = try await pool.execute(options)
            #expect(String(buffer: response.body) == "answered")
        }
        #expect(attempts.count("bad-path") == 0, "nothing was sent")
        #expect(attempts.count("asterisk") == 1)
    }
}
