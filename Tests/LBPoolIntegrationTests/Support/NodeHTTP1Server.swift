import Foundation

/// Node.js's own `http` module (HTTP/1.1, Debian's `nodejs`) on one address: `/echo` writes back
/// each chunk of a (chunked) request body as it arrives and ends the chunked response with
/// trailers counting what it got (`x-chunks`, `x-bytes`) and echoing the request trailer
/// `x-client-done`.
final class NodeHTTP1Server: Sendable {
    let ip: String
    let port: Int
    private let folder: URL
    private let child: ChildProcess

    static let script = #"""
        'use strict';
        const http = require('node:http');
        const [address, port] = process.argv.slice(2);
        http.createServer((req, res) => {
          if (req.url !== '/echo') { res.writeHead(404); res.end(); return; }
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'trailer': 'x-chunks, x-bytes, x-client-done' });
          let chunks = 0, bytes = 0;
          req.on('data', (chunk) => { chunks += 1; bytes += chunk.length; res.write(chunk); });
          req.on('end', () => {
            res.addTrailers({ 'x-chunks': String(chunks), 'x-bytes': String(bytes), 'x-client-done': req.trailers['x-client-done'] || 'none' });
            res.end();
          });
        }).listen(Number(port), address);
        """#

    init(ip: String, port: Int) async throws {
        let node = try requireTool("node", package: "nodejs")
        self.ip = ip
        self.port = port
        folder = try makeWorkFolder("node-http1-\(ip)")
        let script = folder.appendingPathComponent("server.js")
        try Self.script.write(to: script, atomically: true, encoding: .utf8)
        child = try ChildProcess(
            name: "node http \(ip)", path: node, arguments: [script.path, ip, String(port)],
            log: folder.appendingPathComponent("stderr.log"))
        let child = child
        try await waitFor("node http on \(ip):\(port)") {
            guard child.isRunning else { throw SetupError(description: "node http on \(ip):\(port) exited at start") }
            return isListening(ip, port)
        }
    }

    deinit {
        child.stopBlocking(SIGTERM)
        try? FileManager.default.removeItem(at: folder)
    }
}
