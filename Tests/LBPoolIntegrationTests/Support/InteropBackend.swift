import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The HTTP/2 server implementations, besides nginx, that the interop tests run the pool
/// against. Each comes from a Debian package (or PyPI) that `make deps` installs.
enum InteropServer: String, CaseIterable, Sendable, CustomStringConvertible {
    case apache
    case h2o
    case node
    case hypercorn

    var description: String {
        switch self {
        case .apache: "Apache httpd mod_http2"
        case .h2o: "h2o"
        case .node: "Node.js http2"
        case .hypercorn: "hypercorn"
        }
    }
}

/// How to run one server implementation as one pod: written by ``ApacheBackend``,
/// ``H2OBackend``, ``NodeBackend`` and ``HypercornBackend`` into the pod's work folder.
struct InteropLaunch {
    var executable: String
    var arguments: [String]
    /// The signal that starts the server's graceful stop (GOAWAY, open streams finish, exit).
    var gracefulStopSignal: Int32
    /// Where the server writes one line per request, once its body is complete:
    /// `request-id method path received-bytes adler32` (`-` where it has none).
    var requestLog: URL
}

/// What every interop backend serves and what the tests send it.
enum InteropPayload {
    /// The length of `/big`.
    static let bigLength = 4 << 20
    /// The length of each test POST body.
    static let postLength = 64 << 10

    /// Byte `i` of `/big` is `i % 251`: no power of two divides the period, so a chunk lost,
    /// repeated or reordered at any frame or window boundary changes the bytes that follow.
    static let bigBody: [UInt8] = (0..<bigLength).map { UInt8($0 % 251) }
    /// ``bigBody`` in a buffer, to compare responses with.
    static let bigBuffer = ByteBuffer(bytes: bigBody)

    /// The body of test POST `number`: different for every number, so a body delivered for
    /// another request shows in its checksum.
    static func postBody(number: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeBytes((0..<postLength).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ number &* 31 &+ $0 >> 8) })
        return buffer
    }

    /// Adler-32 (RFC 1950): the servers compute it with nothing but additions and remainders
    /// (Lua, mruby, JavaScript, Python's zlib), so every one of them can report it.
    static func adler32(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        for byte in bytes {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        return b << 16 | a
    }
}

/// One request as a backend logged it.
struct InteropLoggedRequest: Equatable {
    var requestID: String
    var method: String
    var path: String
    /// Request body bytes the server received; nil where the server logs none (bodiless
    /// requests on Apache and h2o).
    var receivedBytes: Int?
    var adler32: UInt32?
}

/// One HTTP/2 server of an ``InteropServer`` implementation on one loopback address, like one
/// pod; its configuration and logs in its own work folder.
///
/// Every implementation answers `GET /` with `<its address>\n`, a POST with
/// `<received bytes>\n` after logging the body's length and Adler-32, and `GET /big` with
/// ``InteropPayload/bigBody``. Node and hypercorn also serve `/echo` (each request-body chunk
/// streamed back as it arrives, full duplex) and `/trailers` (a short body, then trailers
/// `x-checksum: <Adler-32 of the body>` and `grpc-status: 0`; hypercorn sends trailers only to a
/// request with `te: trailers`).
final class InteropBackend: @unchecked Sendable {
    // @unchecked: `child`, the only mutable state, is set by start(), read by
    // beginGracefulStop() and cleared by waitForExit() and deinit, which the owning test calls
    // one after another; startInteropFleet runs start() of different backends in parallel child
    // tasks, each once, and joins them before anything else touches them. All else is immutable.
    struct TLS {
        var certificate: String
        var key: String
    }

    let server: InteropServer
    let ip: String
    let port: Int
    let folder: URL
    private let launch: InteropLaunch
    private var child: ChildProcess?

    init(_ server: InteropServer, ip: String, port: Int, tls: TLS? = nil) throws {
        self.server = server
        self.ip = ip
        self.port = port
        let folder = try makeWorkFolder("\(server.rawValue)-\(ip)")
        self.folder = folder
        switch server {
        case .apache: launch = try ApacheBackend.launch(ip: ip, port: port, tls: tls, in: folder)
        case .h2o: launch = try H2OBackend.launch(ip: ip, port: port, tls: tls, in: folder)
        case .node: launch = try NodeBackend.launch(ip: ip, port: port, tls: tls, in: folder)
        case .hypercorn: launch = try HypercornBackend.launch(ip: ip, port: port, tls: tls, in: folder)
        }
    }

    private var stderrLog: URL { folder.appendingPathComponent("stderr.log") }

    /// Starts the server and returns once it accepts connections.
    func start() async throws {
        let child = try ChildProcess(
            name: "\(server) \(ip)", path: launch.executable, arguments: launch.arguments, log: stderrLog
        )
        self.child = child
        let what = "\(server) on \(ip):\(port)"
        let log = stderrLog
        try await waitFor(what, timeout: .seconds(15)) {
            guard child.isRunning else {
                let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                throw SetupError(description: "\(what) exited at start (code \(child.exitCode.map(String.init) ?? "-")): \(output)")
            }
            return isListening(ip, port)
        }
    }

    /// Sends the implementation's graceful-stop signal and returns at once.
    func beginGracefulStop() {
        child?.signal(launch.gracefulStopSignal)
    }

    /// Waits up to `gracePeriod` for the server to exit, then kills it and whatever it forked
    /// (as Kubernetes does after a pod's grace period). Returns whether it exited by itself.
    @discardableResult
    func waitForExit(gracePeriod: Duration = .seconds(10)) async -> Bool {
        guard let child else { return true }
        let deadline = ContinuousClock.now + gracePeriod
        // A child's exit offers nothing to await: poll.
        while child.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let exited = !child.isRunning
        await child.stopGroup(SIGKILL)
        self.child = nil
        return exited
    }

    /// The requests the server logged so far, in order.
    func requestLog() throws -> [InteropLoggedRequest] {
        guard FileManager.default.fileExists(atPath: launch.requestLog.path) else { return [] }
        return try String(contentsOf: launch.requestLog, encoding: .utf8).split(separator: "\n").map { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5 else {
                throw SetupError(description: "\(server) on \(ip) logged an unexpected line: '\(line)'")
            }
            return InteropLoggedRequest(
                requestID: fields[0], method: fields[1], path: fields[2],
                receivedBytes: Int(fields[3]), adler32: UInt32(fields[4])
            )
        }
    }

    /// The server's standard error, for failure messages.
    func stderr() -> String {
        (try? String(contentsOf: stderrLog, encoding: .utf8)) ?? ""
    }

    deinit {
        child?.stopBlocking(SIGKILL)
        try? FileManager.default.removeItem(at: folder)
    }
}

/// Backends of `server` on `ips`, all on one free port, and dnsmasq answering `name` with them.
/// The backends start in parallel; if one fails, those already running are stopped (deinit).
func startInteropFleet(
    _ server: InteropServer,
    _ ips: [String],
    name: String = serviceName,
    tls: InteropBackend.TLS? = nil
) async throws -> (backends: [InteropBackend], dns: DNSServer, port: Int) {
    let port = try freePort(alsoOn: ips)
    let backends = try ips.map { try InteropBackend(server, ip: $0, port: port, tls: tls) }
    try await withThrowingTaskGroup(of: Void.self) { group in
        for backend in backends {
            group.addTask { try await backend.start() }
        }
        try await group.waitForAll()
    }
    let dns = try DNSServer(ttl: 5)
    try dns.setRecords([name: ips])
    try await dns.start()
    return (backends, dns, port)
}

/// Writes `text` to `name` in `folder`, readable by the unprivileged user a server drops to.
@discardableResult
func writeInteropFile(_ text: String, named name: String, in folder: URL) throws -> URL {
    let url = folder.appendingPathComponent(name)
    try text.write(to: url, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: url.path)
    return url
}

/// Writes ``InteropPayload/bigBody`` to `big.bin` in `folder`, for servers that serve `/big`
/// as a static file.
func writeBigBodyFile(in folder: URL) throws -> URL {
    let url = folder.appendingPathComponent("big.bin")
    try Data(InteropPayload.bigBody).write(to: url)
    try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: url.path)
    return url
}

/// Whether the tests run as root: then Apache and h2o must be told which user to drop to.
var runningAsRoot: Bool { getuid() == 0 }
