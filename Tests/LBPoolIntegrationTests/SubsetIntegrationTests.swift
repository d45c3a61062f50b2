import HTTPTypes
import LBPool
import Testing

/// Subsetting against 30 nginx behind dnsmasq: a client reaches exactly its subset and no other
/// address, another key gets another subset, and an address leaving DNS is replaced alone while
/// requests keep flowing, none failing.
@Suite(.serialized, .timeLimit(.minutes(3))) struct SubsetIntegrationTests {
    static let ips = (1...30).map { "127.0.5.\($0)" }

    func subsetPool(
        dns: DNSServer, port: Int, key: String, size: Int = 5, _ configure: (inout LBPool.Configuration) -> Void = { _ in }
    ) throws -> LBPool {
        var configuration = testConfiguration(dns: dns)
        configuration.subset = .init(size: size, key: key)
        configure(&configuration)
        return try LBPool(target: "http://\(serviceName):\(port)", configuration: configuration)
    }

    @Test func fiveOfThirtyAddressesAreReachedAndAnotherKeyReachesAnotherFive() async throws {
        let (backends, dns, port) = try await startFleet(Self.ips)
        defer { withExtendedLifetime((backends, dns)) {} }
        var subsets: [Set<String>] = []
        for key in ["client-a", "client-b"] {
            let pool = try subsetPool(dns: dns, port: port, key: key)
            let load = InteropLoad(maxRequestsPerWorker: 50)
            let members = try await withRunningPool(pool) { pool in
                try await pool.waitUntilReady(timeout: .seconds(20))
                let snapshot = pool.snapshot()
                #expect(snapshot.subset?.resolved == 30 && snapshot.subset?.key == key, "\(snapshot)")
                let members = Set(snapshot.subset?.members.map(\.ip) ?? [])
                #expect(members.count == 5, "\(snapshot)")
                #expect(Set(snapshot.addresses.map(\.address.ip)) == members)
                try await load.running(on: pool, workers: 10) {
                    try await waitFor("500 requests", timeout: .seconds(30)) { load.isOver }
                }
                // No connection to any address outside the subset, a connection to each inside.
                for ip in Self.ips {
                    let connections = try establishedConnections(to: ip, port: port)
                    #expect(members.contains(ip) ? connections >= 1 : connections == 0, "\(ip): \(connections) connections")
                }
                return members
            }
            // The pool's sockets close as it stops; the next pool counts connections anew.
            try await waitFor("the connections of \(key) closed") {
                try Self.ips.allSatisfy { try establishedConnections(to: $0, port: port) == 0 }
            }
            #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
            let servers = load.servers(startedAfter: 0)
            #expect(Set(servers.keys) == members, "\(servers)")
            #expect(servers.values.allSatisfy { $0 == 100 }, "round robin over the subset: \(servers)")
            subsets.append(members)
        }
        #expect(subsets[0] != subsets[1], "\(subsets)")
    }

    @Test func anAddressOfTheSubsetLeavingDNSIsReplacedAloneWithNoFailedRequest() async throws {
        let (backends, dns, port) = try await startFleet(Self.ips, ttl: 1)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try subsetPool(dns: dns, port: port, key: "client-a")
        let events = pool.events()
        let load = InteropLoad()
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(20))
            let before = pool.snapshot().subset?.members ?? []
            try #require(before.count == 5)
            let leaving = before[0]
            try await load.running(on: pool, workers: 8) {
                try await waitFor("requests before the change") { load.successCount >= 200 }
                try dns.setRecords([serviceName: Self.ips.filter { $0 != leaving.ip }])
                dns.reload()
                // A request that starts once the address left the subset cannot pick it: it left
                // the picker before the event.
                var leftAfterRequest: Int?
                var joined: [ResolvedAddress] = []
                for await event in events {
                    if event.kind == .leftSubset {
                        #expect(event.address == leaving)
                        leftAfterRequest = load.started
                    }
                    if case .joinedSubset = event.kind, !before.contains(event.address) { joined.append(event.address) }
                    if event.kind == .ready, leftAfterRequest != nil, joined.contains(event.address) { break }
                }
                let mark = try #require(leftAfterRequest)
                #expect(joined.count == 1, "\(joined)")
                let after = pool.snapshot().subset?.members ?? []
                #expect(Set(after) == Set(before.dropFirst()).union(joined), "before \(before), after \(after)")
                #expect(pool.snapshot().addresses.count == 5)
                // Requests started since go to the new subset only.
                let count = load.successCount
                try await waitFor("requests after the change", timeout: .seconds(20)) { load.successCount >= count + 500 }
                let servers = load.servers(startedAfter: mark)
                #expect(Set(servers.keys) == Set(after.map(\.ip)), "\(servers)")
            }
        }
        #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
        #expect(load.total > 700)
    }

    @Test func aMemberFailingItsHealthChecksIsStoodInForUntilItPassesAgain() async throws {
        let ips = Array(Self.ips.prefix(8))
        let (backends, dns, port) = try await startFleet(ips)
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try subsetPool(dns: dns, port: port, key: "client-a", size: 3) { configuration in
            var check = LBPool.Configuration.HealthCheck(path: "/healthz", interval: .milliseconds(100))
            check.unhealthyThreshold = 1
            configuration.healthCheck = check
        }
        let events = pool.events()
        let load = InteropLoad()
        try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(20))
            let before = pool.snapshot().subset?.members ?? []
            try #require(before.count == 3)
            let sick = try #require(backends.first { $0.ip == before[1].ip })
            try await load.running(on: pool, workers: 4) {
                try await waitFor("requests before") { load.successCount >= 100 }
                try sick.setHealthy(false)
                // The sick address stays in the subset (its checks go on); the fourth-ranked joins.
                var standIn: ResolvedAddress?
                var unhealthyAt: Int?
                var ready: Set<ResolvedAddress> = []
                for await event in events {
                    if event.kind == .ready { ready.insert(event.address) }
                    if event.address == before[1], event.kind == .health(.unhealthy) { unhealthyAt = load.started }
                    // (The stream starts with the pool: the first three joined before.)
                    if case .joinedSubset(let rank) = event.kind, !before.contains(event.address) {
                        #expect(rank == 4, "\(event)")
                        standIn = event.address
                    }
                    if let standIn, unhealthyAt != nil, ready.contains(standIn) { break }
                }
                let stoodIn = try #require(standIn)
                #expect(pool.snapshot().subset?.members == before + [stoodIn])
                let whileOut = load.started
                try await waitFor("requests while it is out") { load.servers(startedAfter: whileOut).values.reduce(0, +) >= 300 }
                #expect(Set(load.servers(startedAfter: whileOut).keys) == [before[0].ip, before[2].ip, stoodIn.ip])

                // Passing again: back in use, and the stand-in leaves.
                try sick.setHealthy(true)
                for await event in events where event.address == stoodIn && event.kind == .leftSubset { break }
                #expect(pool.snapshot().subset?.members == before)
                let back = load.started
                try await waitFor("requests once it is back") { load.servers(startedAfter: back).values.reduce(0, +) >= 300 }
                #expect(Set(load.servers(startedAfter: back).keys) == Set(before.map(\.ip)))
            }
        }
        #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
    }
}
