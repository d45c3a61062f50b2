import Foundation

/// Node's own `http2` module (from Node's standard library) as a full-duplex server: `/echo`
/// writes back each request-body chunk as it arrives, then ends with trailers that count what
/// it read (`x-chunks`, `x-bytes`) and repeat the request's trailer `x-client-done`.
final class NodeEchoServer: @unchecked Sendable {
    // @unchecked: `child` is set in `start` and read in `stop`, by the owning test task only.
    let ip: String
    let port: Int
    private let folder: URL
    private let node: String
    private var child: ChildProcess?

    static let script = """
        const http2 = require('node:http2');
        const [host, port] = [process.argv[2], Number(process.argv[3])];
        const server = http2.createServer();
        server.on('stream', (stream, headers) => {
          if (headers[':path'] !== '/echo') {
            stream.respond({ ':status': 200 });
            stream.end(host);
            return;
          }
          let chunks = 0, bytes = 0, clientDone = 'none';
          stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' }, { waitForTrailers: true });
          stream.on('data', (chunk) => { chunks += 1; bytes += chunk.length; stream.write(chunk); });
          stream.on('trailers', (trailers) => { clientDone = trailers['x-client-done'] || 'none'; });
          stream.on('end', () => stream.end());
          stream.on('wantTrailers', () => {
            stream.sendTrailers({ 'x-chunks': String(chunks), 'x-bytes': String(bytes), 'x-client-done': clientDone });
          });
        });
        server.listen(port, host);
        process.on('SIGTERM', () => server.close(() => process.exit(0)));
        """

    init(ip: String = "127.0.0.1", port: Int) throws {
        self.node = try requireTool("node", package: "nodejs")
        self.ip = ip
        self.port = port
        self.folder = try makeWorkFolder("node-echo")
        try Self.script.write(to: folder.appendingPathComponent("echo.js"), atomically: true, encoding: .utf8)
    }

    func start() async throws {
        let child = try ChildProcess(
            name: "node echo", path: node, arguments: [folder.appendingPathComponent("echo.js").path, ip, "\(port)"],
            log: folder.appendingPathComponent("stderr.log"))
        self.child = child
        let ip = ip, port = port, folder = folder
        try await waitFor("node on \(ip):\(port)") {
            guard child.isRunning else {
                let log = (try? String(contentsOf: folder.appendingPathComponent("stderr.log"), encoding: .utf8)) ?? ""
                throw SetupError(description: "node on \(ip):\(port) exited: \(log)")
            }
            return isListening(ip, port)
        }
    }

    func stop() async {
        await child?.stop(SIGTERM)
        child = nil
    }
}
