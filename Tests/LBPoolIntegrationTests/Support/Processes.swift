import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Why an integration test could not set up its peers.
struct SetupError: Error, CustomStringConvertible {
    var description: String
}

/// Finds `tool` on PATH (and the sbin folders, where Debian puts nginx and dnsmasq) or fails
/// with the apt package that provides it.
func requireTool(_ tool: String, package: String) throws -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    for folder in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin"] {
        let candidate = folder + "/" + tool
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw SetupError(description: "\(tool) not found: install it with `apt-get install -y \(package)` (or run `make test`, which does)")
}

/// A fresh, world-readable temporary folder (dnsmasq drops privileges and must read it).
func makeWorkFolder(_ name: String) throws -> URL {
    let url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("lbpool-\(name)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    return url
}

/// Runs a command to completion and returns its standard output.
@discardableResult
func runCommand(_ path: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard process.terminationStatus == 0 else {
        throw SetupError(description: "\(path) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(text)")
    }
    return text
}

/// A TCP port free on 127.0.0.1 and on each of `alsoOn`.
func freePort(alsoOn addresses: [String] = []) throws -> Int {
    for _ in 0..<50 {
        let port = try bindEphemeral("127.0.0.1")
        if try addresses.allSatisfy({ try canBind($0, port) }) { return port }
    }
    throw SetupError(description: "no free port on 127.0.0.1 and \(addresses)")
}

/// Opens a TCP socket and hands it, with `ip:port` as a sockaddr, to `body`; closes it after.
private func withSocket<Result>(_ ip: String, _ port: Int, _ body: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    inet_pton(AF_INET, ip, &address.sin_addr)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

private func bindEphemeral(_ ip: String) throws -> Int {
    let port = withSocket(ip, 0) { fd, address, length -> Int? in
        guard bind(fd, address, length) == 0 else { return nil }
        var bound = sockaddr_in()
        var boundLength = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &boundLength) }
        }
        return Int(UInt16(bigEndian: bound.sin_port))
    }
    guard let port else { throw SetupError(description: "bind \(ip):0 failed: errno \(errno)") }
    return port
}

private func canBind(_ ip: String, _ port: Int) throws -> Bool {
    withSocket(ip, port) { fd, address, length in bind(fd, address, length) == 0 }
}

/// Whether something accepts TCP connections at ip:port.
func isListening(_ ip: String, _ port: Int) -> Bool {
    withSocket(ip, port) { fd, address, length in connect(fd, address, length) == 0 }
}

/// Polls `condition` every 20 ms until it holds; throws after `timeout`. For conditions of
/// outside processes that offer no event to wait on (a port opening, a connection closing).
func waitFor(_ what: String, timeout: Duration = .seconds(10), _ condition: () throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try !condition() {
        guard ContinuousClock.now < deadline else {
            throw SetupError(description: "timed out after \(timeout) waiting for \(what)")
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// Established TCP connections whose local side is `ip:port`, counted on the server side with `ss`.
func establishedConnections(to ip: String, port: Int) throws -> Int {
    let ss = try requireTool("ss", package: "iproute2")
    let output = try runCommand(ss, ["-Htn", "state", "established", "( sport = :\(port) )"])
    return output.split(separator: "\n").filter { line in
        line.split(whereSeparator: { $0 == " " }).contains { $0 == "\(ip):\(port)" }
    }.count
}

/// A child process, started with posix_spawn and reaped with waitpid; killed when the test is
/// done with it.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: `exited` is only touched by the owning test task, sequentially; `pid` is
    // immutable.
    let pid: pid_t
    let name: String
    private var exited = false
    /// The exit code once the process exited normally; nil while running or if killed.
    private(set) var exitCode: Int32?

    /// Starts `path`; standard error goes to `log`, standard output to `output` (or `log`).
    init(name: String, path: String, arguments: [String], log: URL, output: URL? = nil) throws {
        self.name = name
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, log.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let output {
            posix_spawn_file_actions_addopen(&actions, 1, output.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 2, 1)
        }
        // Threads of the test runner block signals, and a spawned child inherits the mask:
        // reset it, and every handler, so that the child can be stopped with a signal.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        // Its own process group, so that it and every process it forks (nginx's workers) can be
        // killed at once, none left behind serving.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw SetupError(description: "cannot start \(path): error \(rc)") }
        self.pid = pid
    }

    /// Whether the process is still running (reaps it if it exited).
    var isRunning: Bool {
        guard !exited else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { reaped(status) }
        return !exited
    }

    func signal(_ signal: Int32) {
        guard !exited else { return }
        kill(pid, signal)
    }

    /// Sends `signal` to the process and every process it started (its process group), then
    /// waits for the process to exit.
    func stopGroup(_ signal: Int32) async {
        guard !exited else { return }
        kill(-pid, signal)
        await exit()
    }

    /// Sends `signal` and waits for the process to exit without holding a thread: the pool
    /// under test needs the (few) cooperative threads to finish the streams the process waits for.
    func stop(_ signal: Int32) async {
        guard !exited else { return }
        kill(pid, signal)
        await exit()
    }

    /// Waits for the process to exit, polling: a child's exit offers nothing to await.
    func exit() async {
        while isRunning {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Sends `signal` and blocks until the process exited; for deinit, with a signal that makes
    /// the process exit at once.
    func stopBlocking(_ signal: Int32 = SIGTERM) {
        guard !exited else { return }
        kill(pid, signal)
        wait()
        // Whatever it forked and left behind goes too.
        kill(-pid, SIGKILL)
    }

    /// Blocks until the process exits.
    private func wait() {
        guard !exited else { return }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        reaped(status)
    }

    private func reaped(_ status: Int32) {
        exited = true
        // WIFEXITED / WEXITSTATUS, which Swift does not import.
        if status & 0x7f == 0 { exitCode = (status >> 8) & 0xff }
    }

    deinit {
        stopBlocking(SIGTERM)
    }
}
