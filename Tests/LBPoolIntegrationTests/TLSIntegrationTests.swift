import Foundation
import LBPool
import NIOCore
import NIOSSL
import Testing

/// An HTTPS (HTTP/2 over TLS, ALPN h2) backend reached by name, with a certificate for that name
/// signed by a CA the test makes and the pool trusts through its configuration.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TLSIntegrationTests {
    static let name = "api.tls.test"

    /// Makes a CA and a server certificate for `name` with the openssl command line.
    func makeCertificates(in folder: URL) throws -> (ca: String, certificate: String, key: String) {
        let openssl = try requireTool("openssl", package: "openssl")
        let ca = folder.appendingPathComponent("ca.pem").path
        let caKey = folder.appendingPathComponent("ca.key").path
        let key = folder.appendingPathComponent("server.key").path
        let csr = folder.appendingPathComponent("server.csr").path
        let certificate = folder.appendingPathComponent("server.pem").path
        let extensions = folder.appendingPathComponent("server.ext")
        try "subjectAltName=DNS:\(Self.name)\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(to: extensions, atomically: true, encoding: .utf8)
        try runCommand(
            openssl,
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", caKey, "-out", ca, "-days", "2", "-subj", "/CN=lbpool test CA",
            ])
        try runCommand(
            openssl,
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=\(Self.name)",
            ])
        try runCommand(
            openssl,
            [
                "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial",
                "-out", certificate, "-days", "2", "-extfile", extensions.path,
            ])
        return (ca, certificate, key)
    }

    @Test func httpsBackendIsReachedByNameWithTheConfiguredCA() async throws {
        let folder = try makeWorkFolder("tls")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (ca, certificate, key) = try makeCertificates(in: folder)
        let port = try freePort(alsoOn: ["127.0.0.2"])
        let backend = try NginxBackend(ip: "127.0.0.2", port: port, tls: .init(certificate: certificate, key: key))
        try await backend.start()
        let dns = try DNSServer(ttl: 5)
        try dns.setRecords([Self.name: ["127.0.0.2"]])
        try await dns.start()

        var configuration = testConfiguration(dns: dns)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(ca)
        configuration.tls = tls
        let pool = try LBPool(target: "https://\(Self.name):\(port)", configuration: configuration)
        try await withRunningPool(pool) { pool in
            for number in 0..<10 {
                let response = try await pool.execute(get(id: "tls-\(number)"))
                #expect(response.head.status == .ok)
                #expect(response.servedBy.ip == "127.0.0.2")
                #expect(String(buffer: response.body) == "127.0.0.2\n")
            }
        }
        #expect(try backend.accessLog().count == 10)

        // The same backend without trusting the test CA: certificate verification refuses it.
        var untrusted = testConfiguration(dns: dns)
        untrusted.requestTimeout = .seconds(2)
        let refused = try LBPool(target: "https://\(Self.name):\(port)", configuration: untrusted)
        try await withRunningPool(refused) { pool in
            let error = await #expect(throws: LBPoolError.self) {
                _ = try await pool.execute(get(id: "untrusted"))
            }
            #expect(error?.code == .deadlineExceeded)
            #expect(error?.message.contains("CERTIFICATE_VERIFY_FAILED") == true, "\(String(describing: error))")
        }
        #expect(try backend.accessLog().count == 10)
        withExtendedLifetime((backend, dns)) {}
    }
}
