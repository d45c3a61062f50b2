import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Node.js's own `http2` module (Debian's `nodejs`) as one pod: h2c with prior knowledge, or TLS
/// with ALPN h2. The server below logs every request once its body is complete and serves `/`,
/// POST, `/big`, `/echo` (full duplex) and `/trailers`. SIGTERM closes the listener and every
/// session (GOAWAY with the last stream it took); open streams finish, then Node exits.
enum NodeBackend {
    static func launch(ip: String, port: Int, tls: InteropBackend.TLS?, in folder: URL) throws -> InteropLaunch {
        let node = try requireTool("node", package: "nodejs")
        let script = try writeInteropFile(serverScript, named: "server.js", in: folder)
        let log = folder.appendingPathComponent("requests.log")
        return InteropLaunch(
            executable: node,
            arguments: [script.path, ip, String(port), log.path] + (tls.map { [$0.certificate, $0.key] } ?? []),
            gracefulStopSignal: SIGTERM,
            requestLog: log
        )
    }

    static let serverScript = #"""
        'use strict';
        // One HTTP/2 backend ("pod") for swift-lbpool's interop tests, on Node's own http2 module.
        // Arguments: address port log-file [certificate key]. h2c with prior knowledge, or TLS with
        // ALPN h2 when a certificate is given. Every request is logged, once its body is complete,
        // as "request-id method path received-bytes adler32".
        const http2 = require('node:http2');
        const fs = require('node:fs');

        const [address, port, logFile, certificate, key] = process.argv.slice(2);
        const log = fs.openSync(logFile, 'a');
        const big = Buffer.alloc(4 << 20);
        for (let i = 0; i < big.length; i++) big[i] = i % 251;

        function adler32(chunks) {
          let a = 1, b = 0;
          for (const chunk of chunks) {
            for (let i = 0; i < chunk.length; i++) {
              a = (a + chunk[i]) % 65521;
              b = (b + a) % 65521;
            }
          }
          return b * 65536 + a;
        }

        const server = certificate
          ? http2.createSecureServer({ cert: fs.readFileSync(certificate), key: fs.readFileSync(key) })
          : http2.createServer();
        const sessions = new Set();
        server.on('session', (session) => {
          sessions.add(session);
          session.on('close', () => sessions.delete(session));
        });

        server.on('stream', (stream, headers) => {
          const path = headers[':path'];
          const method = headers[':method'];
          const id = headers['x-request-id'] || '-';
          const chunks = [];
          let received = 0;
          let clientDone = 'none';
          if (path === '/echo') {
            // Full duplex: the head goes out at once, each chunk as it arrives; trailers at the
            // end count what was read and repeat the request's trailer `x-client-done`.
            stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' }, { waitForTrailers: true });
            stream.on('trailers', (trailers) => { clientDone = trailers['x-client-done'] || 'none'; });
            stream.on('wantTrailers', () => {
              stream.sendTrailers({ 'x-chunks': String(chunks.length), 'x-bytes': String(received), 'x-client-done': clientDone });
            });
            stream.on('data', (chunk) => {
              chunks.push(chunk);
              received += chunk.length;
              if (!stream.write(chunk)) {
                stream.pause();
                stream.once('drain', () => stream.resume());
              }
            });
          } else {
            stream.on('data', (chunk) => { chunks.push(chunk); received += chunk.length; });
          }
          stream.on('end', () => {
            const checksum = adler32(chunks);
            fs.writeSync(log, `${id} ${method} ${path} ${received} ${checksum}\n`);
            if (path === '/echo') {
              stream.end();
            } else if (path === '/big') {
              stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'content-length': big.length });
              stream.end(big);
            } else if (path === '/trailers') {
              const body = Buffer.from(`trailers from ${address}\n`);
              stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
              stream.on('wantTrailers', () => {
                stream.sendTrailers({ 'x-checksum': String(adler32([body])), 'grpc-status': '0' });
              });
              stream.end(body);
            } else if (method === 'POST') {
              stream.respond({ ':status': 200, 'content-type': 'text/plain' });
              stream.end(`${received}\n`);
            } else {
              stream.respond({ ':status': 200, 'content-type': 'text/plain' });
              stream.end(`${address}\n`);
            }
          });
          stream.on('error', () => {});
        });

        // Graceful stop: no new connections, GOAWAY on every session, open streams finish, then exit.
        process.on('SIGTERM', () => {
          server.close();
          for (const session of sessions) session.close();
        });
        server.listen(Number(port), address);
        """#
}
