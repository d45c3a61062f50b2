import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// hypercorn (from PyPI, for the `python3` on PATH) running the small ASGI app below as one pod:
/// h2c with prior knowledge, or TLS with ALPN h2. The app logs every request once its body is
/// complete and serves `/`, POST, `/big`, `/echo` (full duplex) and `/trailers`. SIGTERM starts
/// hypercorn's graceful stop.
enum HypercornBackend {
    static func launch(ip: String, port: Int, tls: InteropBackend.TLS?, in folder: URL) throws -> InteropLaunch {
        let python = try requireTool("python3", package: "python3")
        try hypercornInstalled.get()
        let script = try writeInteropFile(serverScript, named: "asgi_backend.py", in: folder)
        let log = folder.appendingPathComponent("requests.log")
        return InteropLaunch(
            executable: python,
            arguments: ["-u", script.path, ip, String(port), log.path] + (tls.map { [$0.certificate, $0.key] } ?? []),
            gracefulStopSignal: SIGTERM,
            requestLog: log
        )
    }

    /// Whether `python3` can import hypercorn, asked once.
    static let hypercornInstalled: Result<Void, SetupError> = {
        do {
            let python = try requireTool("python3", package: "python3")
            try runCommand(python, ["-c", "import hypercorn"])
            return .success(())
        } catch {
            return .failure(
                SetupError(
                    description:
                        "hypercorn is missing for the python3 on PATH: install it with `python3 -m pip install hypercorn` (or run `make deps`, which does): \(error)"
                ))
        }
    }()

    static let serverScript = #"""
        """One HTTP/2 backend ("pod") for swift-lbpool's interop tests: a small ASGI app under hypercorn.

        Arguments: address port log-file [certificate key]. h2c with prior knowledge, or TLS with ALPN h2
        when a certificate is given. Every request is logged, once its body is complete, as
        "request-id method path received-bytes adler32". SIGTERM stops it gracefully.
        """
        import asyncio
        import os
        import signal
        import sys
        import zlib

        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        address, port, log_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        tls = sys.argv[4:6]
        log = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        big = bytes(i % 251 for i in range(251)) * ((4 << 20) // 251 + 1)
        big = big[: 4 << 20]


        def header(scope, name):
            for key, value in scope["headers"]:
                if key == name:
                    return value.decode()
            return "-"


        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            path, method = scope["path"], scope["method"]
            echo = path == "/echo"
            if echo:
                # Full duplex: the head goes out at once, each chunk as it arrives.
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/octet-stream")]})
            received, checksum = 0, 1
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                received += len(chunk)
                checksum = zlib.adler32(chunk, checksum)
                if echo and chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if not message.get("more_body", False):
                    break
            line = f"{header(scope, b'x-request-id')} {method} {path} {received} {checksum}\n"
            os.write(log, line.encode())
            if echo:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            elif path == "/big":
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/octet-stream"),
                                        (b"content-length", str(len(big)).encode())]})
                await send({"type": "http.response.body", "body": big})
            elif path == "/trailers":
                # hypercorn sends trailers only to a request that carries `te: trailers`.
                body = f"trailers from {address}\n".encode()
                await send({"type": "http.response.start", "status": 200, "trailers": True,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": body})
                await send({"type": "http.response.trailers", "more_trailers": False,
                            "headers": [(b"x-checksum", str(zlib.adler32(body)).encode()),
                                        (b"grpc-status", b"0")]})
            else:
                body = f"{received}\n" if method == "POST" else f"{address}\n"
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": body.encode()})


        async def main():
            config = Config()
            config.bind = [f"{address}:{port}"]
            config.accesslog = None
            config.graceful_timeout = 10
            config.keep_alive_max_requests = 1_000_000
            if tls:
                config.certfile, config.keyfile = tls
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await serve(app, config, shutdown_trigger=stop.wait)


        asyncio.run(main())
        """#
}
