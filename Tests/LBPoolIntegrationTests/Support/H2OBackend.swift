import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// h2o (Debian's `h2o`, with mruby) as one pod: h2c with prior knowledge on a plain listener,
/// or TLS with ALPN h2. One thread; an mruby handler answers `/` and counts POST bodies, the
/// access log records what it counted; `/big` is a static file. SIGTERM is h2o's graceful stop:
/// GOAWAY(2^31-1), then the final GOAWAY a second later, open streams finish.
enum H2OBackend {
    static func launch(ip: String, port: Int, tls: InteropBackend.TLS?, in folder: URL) throws -> InteropLaunch {
        let h2o = try requireTool("h2o", package: "h2o")
        let dir = folder.path
        let big = try writeBigBodyFile(in: folder)
        let listen =
            tls.map { tls in
                """
                listen:
                  host: \(ip)
                  port: \(port)
                  ssl:
                    certificate-file: \(tls.certificate)
                    key-file: \(tls.key)
                """
            } ?? """
                listen:
                  host: \(ip)
                  port: \(port)
                """
        // Started as root, h2o drops to an unprivileged user.
        let user = runningAsRoot ? "user: nobody" : ""
        // The handler reads the whole body and reports its length and Adler-32 in response
        // header fields, which the access log writes down.
        try writeInteropFile(
            #"""
            \#(listen)
            \#(user)
            num-threads: 1
            error-log: \#(dir)/error.log
            hosts:
              default:
                paths:
                  /big:
                    file.file: \#(big.path)
                  /:
                    mruby.handler: |
                      Proc.new do |env|
                        if env["REQUEST_METHOD"] == "POST"
                          body = env["rack.input"].read
                          a = 1
                          b = 0
                          body.each_byte { |c| a = (a + c) % 65521; b = (b + a) % 65521 }
                          [200, {"content-type" => "text/plain", "x-received-bytes" => body.bytesize.to_s,
                                 "x-received-adler32" => (b * 65536 + a).to_s}, ["#{body.bytesize}\n"]]
                        else
                          [200, {"content-type" => "text/plain"}, ["\#(ip)\n"]]
                        end
                      end
                access-log:
                  path: \#(dir)/requests.log
                  format: "%{x-request-id}i %m %U %{x-received-bytes}o %{x-received-adler32}o"
            """#, named: "h2o.conf", in: folder)
        return InteropLaunch(
            executable: h2o,
            arguments: ["-c", "\(dir)/h2o.conf"],
            gracefulStopSignal: SIGTERM,
            requestLog: folder.appendingPathComponent("requests.log")
        )
    }
}
