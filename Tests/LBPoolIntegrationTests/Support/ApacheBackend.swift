import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Apache httpd with mod_http2 (Debian's `apache2-bin`) as one pod: h2c with prior knowledge
/// (`H2Direct`), or TLS with ALPN h2 through mod_ssl. The event MPM with one child process; a
/// mod_lua handler answers `/` and counts POST bodies, the access log records what it counted;
/// `/big` is a static file. SIGWINCH is Apache's graceful stop (`apachectl graceful-stop`).
enum ApacheBackend {
    static let modules = "/usr/lib/apache2/modules"

    static func launch(ip: String, port: Int, tls: InteropBackend.TLS?, in folder: URL) throws -> InteropLaunch {
        let apache = try requireTool("apache2", package: "apache2-bin")
        guard FileManager.default.fileExists(atPath: "\(modules)/mod_http2.so"),
            FileManager.default.fileExists(atPath: "\(modules)/mod_lua.so")
        else {
            throw SetupError(
                description: "mod_http2 or mod_lua missing in \(modules): install them with `apt-get install -y apache2-bin` (or run `make test`, which does)")
        }
        let dir = folder.path
        _ = try writeBigBodyFile(in: folder)
        // The handler reads the whole body (mod_lua's r:requestbody) and reports its length and
        // Adler-32 in response header fields, which the access log writes down.
        try writeInteropFile(
            #"""
            function handle(r)
              r.content_type = "text/plain"
              if r.method == "POST" then
                local body = r:requestbody()
                local a, b = 1, 0
                for i = 1, #body do
                  a = (a + body:byte(i)) % 65521
                  b = (b + a) % 65521
                end
                r.headers_out["x-received-bytes"] = tostring(#body)
                r.headers_out["x-received-adler32"] = tostring(b * 65536 + a)
                r:puts(#body .. "\n")
              else
                r:puts("\#(ip)\n")
              end
              return apache2.OK
            end
            """#, named: "handler.lua", in: folder)
        let tlsConfig =
            tls.map { tls in
                """
                LoadModule socache_shmcb_module \(modules)/mod_socache_shmcb.so
                LoadModule ssl_module \(modules)/mod_ssl.so
                SSLSessionCache "shmcb:\(dir)/ssl_cache(65536)"
                SSLEngine on
                SSLCertificateFile "\(tls.certificate)"
                SSLCertificateKeyFile "\(tls.key)"
                Protocols h2 http/1.1
                """
            } ?? """
                Protocols h2c http/1.1
                H2Direct on
                """
        // Started as root, Apache's children must drop to an unprivileged user.
        let user = runningAsRoot ? "User www-data\nGroup www-data" : ""
        try writeInteropFile(
            """
            ServerRoot "\(dir)"
            DefaultRuntimeDir "\(dir)"
            PidFile "\(dir)/httpd.pid"
            Mutex file:\(dir) default
            ServerName \(ip)
            Listen \(ip):\(port)
            \(user)
            LoadModule mpm_event_module \(modules)/mod_mpm_event.so
            LoadModule authz_core_module \(modules)/mod_authz_core.so
            LoadModule alias_module \(modules)/mod_alias.so
            LoadModule http2_module \(modules)/mod_http2.so
            LoadModule lua_module \(modules)/mod_lua.so
            # One child process with a few threads: three pods share two cores.
            StartServers 1
            ServerLimit 1
            ThreadLimit 16
            ThreadsPerChild 16
            MaxRequestWorkers 16
            MinSpareThreads 1
            MaxSpareThreads 16
            ErrorLog "\(dir)/error.log"
            LogLevel warn
            LogFormat "%{x-request-id}i %m %U %{x-received-bytes}o %{x-received-adler32}o" interop
            CustomLog "\(dir)/requests.log" interop
            GracefulShutdownTimeout 10
            DocumentRoot "\(dir)"
            <Directory "\(dir)">
              Require all granted
            </Directory>
            Alias /big "\(dir)/big.bin"
            LuaMapHandler "^/(?!big$)" "\(dir)/handler.lua" handle
            \(tlsConfig)
            """, named: "httpd.conf", in: folder)
        return InteropLaunch(
            executable: apache,
            arguments: ["-d", dir, "-f", "\(dir)/httpd.conf", "-DFOREGROUND"],
            gracefulStopSignal: SIGWINCH,
            requestLog: folder.appendingPathComponent("requests.log")
        )
    }
}
