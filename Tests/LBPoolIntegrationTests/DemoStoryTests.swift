import HTTPTypes
import LBPool
import Synchronization
import Testing

/// The story `make demo` tells, step by step under load, against nginx and dnsmasq: a pod joins
/// through DNS, the pod serving a long download restarts gracefully (the download resumes
/// elsewhere on its connection's closing signal), one is killed, one leaves DNS. No request
/// fails, and every step shows in the pool's events and the backends' share.
@Suite(.serialized, .timeLimit(.minutes(3))) struct DemoStoryTests {
    static let pods = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    static let joining = "127.0.0.5"

    /// A download of `/stream` (2 MiB at 256 KiB/s) over as many requests as it takes: when the
    /// connection under it signals that it is closing, the rest is asked for with a Range.
    struct Download: Sendable {
        var bytes = 0
        var servers: [String] = []
        var closings: [ConnectionCloseReason] = []
    }

    /// The address that served the download's first response, once there is one.
    final class FirstServer: Sendable {
        private let value = Mutex<String?>(nil)
        var ip: String? { value.withLock { $0 } }
        func record(_ ip: String) { value.withLock { $0 = $0 ?? ip } }
    }

    static func download(_ pool: LBPool, firstServer: FirstServer) async throws -> Download {
        var download = Download()
        while true {
            var request = get("/stream", id: "download-\(download.servers.count)")
            if download.bytes > 0 { request.headerFields[.range] = "bytes=\(download.bytes)-" }
            let offset = download.bytes
            let (bytes, server, closing) = try await pool.execute(request) { response in
                #expect(response.head.status.code == (offset == 0 ? 200 : 206))
                firstServer.record(response.servedBy.ip)
                var bytes = 0
                for try await chunk in response.body {
                    bytes += chunk.readableBytes
                    if let reason = response.connectionClosing.reason { return (bytes, response.servedBy.ip, Optional(reason)) }
                }
                return (bytes, response.servedBy.ip, nil)
            }
            download.bytes += bytes
            download.servers.append(server)
            guard let closing else { return download }
            download.closings.append(closing)
        }
    }

    /// The next event for `address` that `matches`.
    static func next(
        _ events: inout AsyncStream<PoolEvent>.Iterator, at address: String, _ matches: (PoolEvent.Kind) -> Bool
    ) async -> PoolEvent? {
        while let event = await events.next() {
            if event.address.ip == address && matches(event.kind) { return event }
        }
        return nil
    }

    @Test func theStoryOfMakeDemoRunsWithNoFailedRequest() async throws {
        let (backends, dns, port) = try await startFleet(Self.pods + [Self.joining], ttl: 1)
        defer { withExtendedLifetime((backends, dns)) {} }
        func backend(_ ip: String) throws -> NginxBackend { try #require(backends.first { $0.ip == ip }) }
        try dns.setRecords([serviceName: Self.pods])
        dns.reload()
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: testConfiguration(dns: dns))
        var events = pool.events().makeAsyncIterator()
        let log = RequestLog()
        let firstServer = FirstServer()
        let (download, restarted, killed, leaving) = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            return try await log.sending(to: pool, workers: 8) {
                // Three pods share the traffic.
                try await waitFor("traffic on the three pods") { Self.pods.allSatisfy { log.firstSuccess(on: $0) != nil } }
                #expect(log.firstSuccess(on: Self.joining) == nil, "not in DNS yet")

                // A fourth joins through DNS and takes its share.
                try dns.setRecords([serviceName: Self.pods + [Self.joining]])
                dns.reload()
                #expect(await Self.next(&events, at: Self.joining) { $0 == .ready } != nil)
                try await waitFor("traffic on the pod that joined") { log.firstSuccess(on: Self.joining) != nil }

                // The pod serving a long download restarts gracefully.
                let downloading = Task { try await Self.download(pool, firstServer: firstServer) }
                try await waitFor("the download to start") { firstServer.ip != nil }
                let restarted = try #require(firstServer.ip)
                let restarting = try backend(restarted)
                restarting.beginQuit()
                let download = try await downloading.value
                await restarting.waitForExit()
                try await restarting.start()
                let back = ContinuousClock.now
                try await waitFor("traffic on the restarted pod") { log.successes(on: restarted, after: back) > 0 }

                // Another is killed: its address is ejected, and then leaves DNS.
                let others = Self.pods.filter { $0 != restarted }
                let (killed, leaving) = (others[0], others[1])
                try await backend(killed).crash()
                #expect(await Self.next(&events, at: killed) { if case .ejected = $0 { true } else { false } } != nil)
                try dns.setRecords([serviceName: [restarted, leaving, Self.joining]])
                dns.reload()
                #expect(await Self.next(&events, at: killed) { $0 == .addressRemoved } != nil)

                // The last leaves DNS: its connection drains.
                try dns.setRecords([serviceName: [restarted, Self.joining]])
                dns.reload()
                #expect(await Self.next(&events, at: leaving) { $0 == .closed(.addressRemoved) } != nil)
                let gone = ContinuousClock.now
                let afterwards = log.total
                try await waitFor("traffic after the last change") { log.total > afterwards + 200 }
                #expect(log.successes(on: leaving, after: gone) == 0, "nothing is sent to an address that left")
                return (download, restarted, killed, leaving)
            }
        }
        #expect(log.failures.isEmpty, "\(log.failures.prefix(5))")
        for ip in [restarted, killed, leaving, Self.joining] {
            #expect(log.firstSuccess(on: ip) != nil, "\(ip) served its share")
        }
        // The download heard the GOAWAY and got the rest from another pod: 2 MiB in all.
        #expect(download.bytes == 2 << 20)
        #expect(download.closings.contains { if case .goAway = $0 { true } else { false } }, "\(download.closings)")
        #expect(download.servers.first == restarted && download.servers.last != restarted, "\(download.servers)")
    }
}
