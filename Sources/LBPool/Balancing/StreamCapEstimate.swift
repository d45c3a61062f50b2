/// What the pool has learned of how many streams a server accepts on one connection.
///
/// Many servers end a connection after a fixed number of requests (nginx's
/// `keepalive_requests`, Envoy's `max_requests_per_connection`) with GOAWAY(NO_ERROR) whose
/// last-stream-id is the same every time. Streams opened past it are refused and must be sent
/// again, possibly into the next connection's cap. Once two connections to an address in a row
/// ended at the same last-stream-id, the pool opens at most that many streams on each later
/// connection to it and dials the replacement when the cap is reached, so no request is refused.
struct StreamCapEstimate: Sendable, Equatable {
    /// Caps below this are not learned: a graceful shutdown of a nearly idle connection looks
    /// the same, and re-dialling every few requests would cost more than a refusal.
    static let smallestLearned = 8

    private var lastSeen: Int?
    /// Streams per connection to open at most, once learned.
    private(set) var cap: Int?

    /// A connection to the address received GOAWAY with `errorCode` and `lastStreamID`.
    mutating func goAwayReceived(errorCode: HTTP2Code, lastStreamID: Int) {
        // Client streams have odd ids: stream n is 2n - 1.
        guard errorCode == .noError, lastStreamID > 0, lastStreamID < Int(Int32.max) else { return }
        let streams = (lastStreamID + 1) / 2
        guard streams >= Self.smallestLearned else {
            lastSeen = nil
            return
        }
        if lastSeen == streams {
            cap = streams
        } else if let cap, streams != cap {
            // The server's limit changed (or this was a shutdown): learn again.
            self.cap = nil
        }
        lastSeen = streams
    }
}
