import HTTPTypes
import LBPool

/// `--follow`: downloads the URL's path whole, over as many requests as it takes. When the
/// connection under the response signals that it is closing (a GOAWAY, a rotation, the address
/// leaving DNS), the download stops reading there and asks another connection for the rest with
/// a `Range`; a response cut off (the pod killed) resumes the same way. Prints a line per step.
enum Follow {
    struct Outcome {
        var bytes = 0
        var total: Int?
        var requests = 0
    }

    static func run(pool: LBPool, path: String) async -> Outcome {
        var outcome = Outcome()
        while outcome.total.map({ outcome.bytes < $0 }) ?? true {
            var request = HTTPRequest(method: .get, scheme: nil, authority: nil, path: path)
            if outcome.bytes > 0 { request.headerFields[.range] = "bytes=\(outcome.bytes)-" }
            outcome.requests += 1
            do {
                let received = outcome.bytes
                let piece = try await pool.execute(request) { response in try await Self.read(response, from: received) }
                let (bytes, total, closing) = (piece.bytes, piece.total, piece.closing)
                outcome.bytes += bytes
                outcome.total = outcome.total ?? total
                if let closing {
                    printLine("follow: \(closing) after \(outcome.bytes) bytes: asking another connection for the rest")
                } else if outcome.total == nil {
                    outcome.total = outcome.bytes
                }
            } catch {
                printLine("follow: request failed: \(error)")
                return outcome
            }
        }
        printLine("follow: \(outcome.bytes) of \(outcome.total ?? 0) bytes in \(outcome.requests) requests")
        return outcome
    }

    struct Piece {
        var bytes = 0
        var total: Int?
        /// Why reading stopped early, if it did.
        var closing: String?
    }

    /// Reads `response` (its bytes start at `offset` of the whole) until it ends or its
    /// connection signals that it is closing.
    static func read(_ response: LBPool.StreamingResponse, from offset: Int) async throws -> Piece {
        var piece = Piece(total: total(of: response.head, offset: offset))
        printLine(
            "follow: \(response.servedBy.ip) answered \(response.head.status.code)"
                + (offset > 0 ? " from byte \(offset)" : "") + (piece.total.map { ", \($0) bytes in all" } ?? ""))
        do {
            for try await chunk in response.body {
                piece.bytes += chunk.readableBytes
                // Heard before the stream is torn down: leave now, resume elsewhere.
                if let reason = response.connectionClosing.reason {
                    piece.closing = "closing signal (\(reason))"
                    return piece
                }
            }
        } catch {
            piece.closing = "body cut off (\(error))"
        }
        return piece
    }

    /// The whole length: a 200's content-length, or a 206's after the slash of content-range.
    static func total(of head: HTTPResponse, offset: Int) -> Int? {
        if head.status.code == 206, let range = head.headerFields[.contentRange], let slash = range.lastIndex(of: "/") {
            return Int(range[range.index(after: slash)...])
        }
        return head.headerFields[.contentLength].flatMap { Int($0) }.map { $0 + offset }
    }
}
