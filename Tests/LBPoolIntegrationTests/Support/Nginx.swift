import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One nginx serving HTTP/2 (or with `http1Only` HTTP/1.1) on one loopback address, like one pod. Answers every request with
/// `<status> <its address>` (200 unless told otherwise) and logs `server_addr request_id method status connection` per request.
/// `/stream` sends 2 MiB at 256 KiB/s (eight seconds): a long-lived response.
final class NginxBackend: @unchecked Sendable {
    // @unchecked: mutated (`child`) only by the owning test task, sequentially.
    let ip: String
    let port: Int
    let folder: URL
    private let nginx: String
    private var child: ChildProcess?

    struct TLS {
        var certificate: String
        var key: String
    }

    /// - Parameters:
    ///   - bodyBytes: Serve a body of this size at `/` instead of the address.
    ///   - limitRate: nginx `limit_rate` for that body, e.g. `128k`: a slow pod.
    init(
        ip: String, port: Int, keepaliveRequests: Int = 1_000_000, status: Int = 200, bodyBytes: Int? = nil,
        limitRate: String? = nil, tls: TLS? = nil, http1Only: Bool = false, extraServerConfig: String = ""
    ) throws {
        self.nginx = try requireTool("nginx", package: "nginx-light")
        self.ip = ip
        self.port = port
        self.folder = try makeWorkFolder("nginx-\(ip)")
        let dir = folder.path
        let listen = "listen \(ip):\(port)" + (tls == nil ? "" : " ssl") + (http1Only ? "" : " http2") + ";"
        let rootLocation =
            bodyBytes == nil
            ? "location / { return \(status) \"\(ip)\\n\"; }"
            : "location / { default_type application/octet-stream; root \(dir); try_files /body.bin =404; \(limitRate.map { "limit_rate \($0);" } ?? "") }"
        let tlsConfig = tls.map { "ssl_certificate \($0.certificate);\n    ssl_certificate_key \($0.key);" } ?? ""
        let config = """
            worker_processes 1;
            daemon off;
            pid \(dir)/nginx.pid;
            error_log \(dir)/error.log warn;
            events { worker_connections 4096; }
            http {
              log_format lb '$server_addr $http_x_request_id $request_method $status $connection $server_protocol';
              access_log \(dir)/access.log lb;
              client_body_temp_path \(dir)/body; proxy_temp_path \(dir)/proxy; fastcgi_temp_path \(dir)/fastcgi;
              uwsgi_temp_path \(dir)/uwsgi; scgi_temp_path \(dir)/scgi;
              keepalive_requests \(keepaliveRequests);
              server {
                \(listen)
                \(tlsConfig)
                \(extraServerConfig)
                \(rootLocation)
                location = /healthz { if (-f \(dir)/unhealthy) { return 503; } return 200 "ok\\n"; }
                location = /stream { alias \(dir)/stream.bin; limit_rate 256k; }
              }
            }
            """
        try config.write(to: folder.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        try Data(repeating: UInt8(ascii: "s"), count: 2 << 20).write(to: folder.appendingPathComponent("stream.bin"))
        if let bodyBytes {
            try Data(repeating: UInt8(ascii: "b"), count: bodyBytes).write(to: folder.appendingPathComponent("body.bin"))
        }
    }

    /// Starts nginx and returns once it accepts connections.
    func start() async throws {
        child = try ChildProcess(
            name: "nginx \(ip)", path: nginx,
            arguments: ["-p", folder.path, "-c", folder.appendingPathComponent("nginx.conf").path],
            log: folder.appendingPathComponent("stderr.log")
        )
        let ip = ip, port = port
        try await waitFor("nginx on \(ip):\(port)") {
            guard child?.isRunning == true else {
                let log = (try? String(contentsOf: folder.appendingPathComponent("stderr.log"), encoding: .utf8)) ?? ""
                throw SetupError(description: "nginx on \(ip):\(port) exited: \(log)")
            }
            return isListening(ip, port)
        }
    }

    /// Graceful stop (SIGQUIT, what `nginx -s quit` sends): GOAWAY, in-flight requests finish;
    /// after `gracePeriod` nginx is stopped with SIGTERM, as Kubernetes does after a pod's grace
    /// period. Returns once nginx exited.
    func quit(gracePeriod: Duration = .seconds(5)) async {
        guard let child else { return }
        child.signal(SIGQUIT)
        // Like a pod's termination grace period: nginx waits for connections to go idle, and a
        // connection accepted just as the quit began may never be idle under load.
        let deadline = ContinuousClock.now + gracePeriod
        while child.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        await child.stop(SIGTERM)
        self.child = nil
    }

    /// Makes `/healthz` answer 503 (or 200 again).
    func setHealthy(_ healthy: Bool) throws {
        let marker = folder.appendingPathComponent("unhealthy")
        if healthy {
            try? FileManager.default.removeItem(at: marker)
        } else {
            try Data().write(to: marker)
        }
    }

    /// SIGKILL for the master and its workers at once (one process group): a crash,
    /// connections reset, nothing answered.
    func crash() async {
        guard let child else { return }
        await child.stopGroup(SIGKILL)
        self.child = nil
    }

    /// Starts a graceful stop and returns at once; ``waitForExit()`` waits for it.
    func beginQuit() {
        child?.signal(SIGQUIT)
    }

    func waitForExit() async {
        await child?.exit()
        child = nil
    }

    /// The access log, one entry per request: server address, request id, method, status,
    /// connection number, protocol (`HTTP/2.0`, `HTTP/1.1`).
    func accessLog() throws -> [(server: String, requestID: String, method: String, status: Int, connection: Int, protocol: String)] {
        let url = folder.appendingPathComponent("access.log")
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map { line in
            let fields = line.split(separator: " ").map(String.init)
            return (fields[0], fields[1], fields[2], Int(fields[3]) ?? 0, Int(fields[4]) ?? 0, fields.count > 5 ? fields[5] : "")
        }
    }

    deinit {
        child?.stopBlocking(SIGTERM)
        try? FileManager.default.removeItem(at: folder)
    }
}

/// dnsmasq on 127.0.0.1 and a free port, answering names from a hosts file with a fixed TTL,
/// like the cluster DNS of a headless service.
final class DNSServer: @unchecked Sendable {
    // @unchecked: mutated only by the owning test task, sequentially.
    let port: Int
    let ttl: Int
    let folder: URL
    private let dnsmasq: String
    private var child: ChildProcess?

    init(ttl: Int) throws {
        self.dnsmasq = try requireTool("dnsmasq", package: "dnsmasq-base")
        self.port = try freePort()
        self.ttl = ttl
        self.folder = try makeWorkFolder("dnsmasq")
        try setRecords([:])
    }

    var address: String { "127.0.0.1:\(port)" }

    /// Replaces every record: name → addresses. Call `reload()` for a running server.
    func setRecords(_ records: [String: [String]]) throws {
        let lines = records.sorted(by: { $0.key < $1.key }).flatMap { name, ips in ips.map { "\($0) \(name)" } }
        let url = folder.appendingPathComponent("hosts")
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: url.path)
    }

    func start() async throws {
        child = try ChildProcess(
            name: "dnsmasq", path: dnsmasq,
            arguments: [
                "-k", "-C", "/dev/null", "--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces",
                "--no-resolv", "--no-hosts", "--addn-hosts=\(folder.appendingPathComponent("hosts").path)",
                "--local-ttl=\(ttl)", "--local=/cluster.local/", "--local=/test/",
                "--pid-file=\(folder.appendingPathComponent("dnsmasq.pid").path)",
            ],
            log: folder.appendingPathComponent("dnsmasq.log")
        )
        let port = port
        try await waitFor("dnsmasq on 127.0.0.1:\(port)") {
            guard child?.isRunning == true else { throw SetupError(description: "dnsmasq exited at start") }
            return isListening("127.0.0.1", port)
        }
    }

    /// Makes dnsmasq re-read the hosts file (SIGHUP).
    func reload() {
        child?.signal(SIGHUP)
    }

    func stop() async {
        await child?.stop(SIGTERM)
        child = nil
    }

    deinit {
        child?.stopBlocking(SIGTERM)
        try? FileManager.default.removeItem(at: folder)
    }
}
