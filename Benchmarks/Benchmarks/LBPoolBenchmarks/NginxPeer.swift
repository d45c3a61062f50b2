import Foundation
import NIOCore
import NIOPosix

/// An nginx h2c backend in its own process, so that an allocation count of this process is the
/// client's alone. Needs `nginx` (Debian `nginx-light`, installed by `make deps`).
struct NginxPeer: Sendable {
    let process: Process
    let directory: URL
    let port: Int

    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    static func start(ip: String = "127.0.0.2") async throws -> NginxPeer {
        guard let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw Failed(description: "nginx not found: install the Debian package nginx-light (make deps does)")
        }
        // A free port: bind one, note it, let it go.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: ip, port: 0).get()
        let port = probe.localAddress?.port ?? 0
        try await probe.close()

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lbpool-bench-nginx-\(port)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let dir = directory.path
        let configuration = """
            worker_processes 1;
            daemon off;
            pid \(dir)/nginx.pid;
            error_log \(dir)/error.log;
            events { worker_connections 1024; }
            http {
              access_log off;
              client_body_temp_path \(dir)/body; proxy_temp_path \(dir)/proxy; fastcgi_temp_path \(dir)/fastcgi;
              uwsgi_temp_path \(dir)/uwsgi; scgi_temp_path \(dir)/scgi;
              keepalive_requests 100000000;
              server { listen \(ip):\(port) http2; location / { return 200 "ok\\n"; } }
            }
            """
        try configuration.write(toFile: "\(dir)/nginx.conf", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: nginx)
        process.arguments = ["-p", dir, "-c", "\(dir)/nginx.conf"]
        try process.run()
        return NginxPeer(process: process, directory: directory, port: port)
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }
}
