import Testing
@testable import LBPool

@Suite struct TargetAndConfigurationTests {
    func error(_ target: String, _ configure: (inout LBPool.Configuration) -> Void = { _ in }) -> LBPoolConfigurationError? {
        var configuration = LBPool.Configuration()
        configure(&configuration)
        do {
            _ = try LBPool(target: target, configuration: configuration)
            return nil
        } catch {
            return error
        }
    }

    @Test func parsesTargets() throws {
        let plain = try Target(parsing: "http://api.default.svc.cluster.local:8080")
        #expect(plain.scheme == .http && plain.host == "api.default.svc.cluster.local" && plain.port == 8080)
        #expect(plain.authority == "api.default.svc.cluster.local:8080")
        let tls = try Target(parsing: "HTTPS://api.example/")
        #expect(tls.scheme == .https && tls.port == 443 && tls.authority == "api.example")
        let v6 = try Target(parsing: "http://[::1]:9000")
        #expect(v6.host == "::1" && v6.isIPLiteral && v6.authority == "[::1]:9000")
        #expect(try Target(parsing: "http://10.1.2.3").isIPLiteral)
        #expect(try !Target(parsing: "http://10.1.2.300").isIPLiteral)
    }

    @Test(arguments: [
        ("api:8080", "expected http://host[:port]"),
        ("ftp://api:21", "unsupported scheme 'ftp'"),
        ("http://api:0", "port from 1 to 65535"),
        ("http://api:65536", "port from 1 to 65535"),
        ("http://api:80x", "port from 1 to 65535"),
        ("http://:8080", "empty host"),
        ("http://", "empty host"),
        ("http://api:8080/v1", "no path"),
        ("http://user@api", "user info"),
        ("http://a b", "expected host[:port]"),
    ])
    func badTargetsAreNamed(target: String, reason: String) {
        let error = error(target)
        #expect(error?.setting == "target")
        #expect(error?.value == target)
        #expect(error?.description.contains(reason) == true, "\(String(describing: error))")
        #expect(error?.description.contains("'\(target)'") == true)
    }

    @Test func badSettingsAreNamed() {
        #expect(error("http://api") { $0.minConnections = 0 } == .init(setting: "minConnections", value: "0", reason: "must be at least 1"))
        #expect(error("http://api") { $0.minConnections = -3 }?.value == "-3")
        #expect(error("http://api") { $0.connectTimeout = .zero }?.setting == "connectTimeout")
        #expect(error("http://api") { $0.requestTimeout = .seconds(-1) }?.description == "invalid requestTimeout '-1.0 seconds': must be greater than zero")
        #expect(error("http://api") { $0.dns.perTryTimeout = .zero }?.setting == "dns.perTryTimeout")
        #expect(error("http://api") { $0.dns.lookupTimeout = .seconds(-2) }?.setting == "dns.lookupTimeout")
        #expect(error("http://api") { $0.dns.tries = 0 }?.setting == "dns.tries")
        #expect(error("http://api") { $0.dns.nameServers = ["127.0.0.1"] }?.value == "127.0.0.1")
        #expect(error("http://api") { $0.dns.maxRefreshInterval = .seconds(1) }?.setting == "dns.maxRefreshInterval")
        #expect(error("http://api") { $0.reconnectBackoff.jitter = 1.5 }?.setting == "reconnectBackoff.jitter")
        #expect(error("http://api") { $0.maxTransparentRetries = -1 }?.setting == "maxTransparentRetries")
        #expect(error("http://api") { $0.subset = .init(size: 0) } == .init(setting: "subset.size", value: "0", reason: "must be at least 1"))
        #expect(error("http://api") { $0.subset = .init(size: 3, key: "") }?.setting == "subset.key")
        #expect(error("http://api") { $0.subset = .init(size: 3) } == nil)
        #expect(error("http://api") == nil)
    }

    @Test func backoffGrowsAndIsCapped() {
        var backoff = ReconnectBackoff()
        backoff.jitter = 0.2
        #expect(backoff.delay(attempt: 1, random: 0) == .seconds(1))
        #expect(backoff.delay(attempt: 2, random: 0) == .milliseconds(1600))
        #expect(backoff.delay(attempt: 3, random: 0) == .milliseconds(2560))
        #expect(backoff.delay(attempt: 50, random: 0) == .seconds(120))
        #expect(backoff.delay(attempt: 1, random: 1) == .milliseconds(1200))
        #expect(backoff.delay(attempt: 1, random: -1) == .milliseconds(800))
    }
}
