/// What a server may make one client connection spend (RFC 9113 §10.5), as the connection
/// handler enforces it. Set from the pool's public configuration.
struct HTTP2ClientLimits: Sendable, Equatable {
    /// The largest decoded header list of a response, sent as SETTINGS_MAX_HEADER_LIST_SIZE.
    var maxHeaderListSize = 64 * 1024
    /// CONTINUATION frames one header block may use.
    var maxContinuationFrames = 32
    /// Glitches tolerated at once, and refilled per second (see ``HTTP2GlitchBudget``).
    var glitchBurst = 1000
    var glitchesPerSecond = 100
    /// PING, SETTINGS and RST_STREAM answers the client may owe while the server does not read.
    var maxOwedControlFrames = 10_000
    /// A response body with no DATA for this long fails; `nil` waits as long as the stream lives.
    var responseBodyIdleTimeout: Duration?
}
