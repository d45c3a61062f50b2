import HTTPTypes
import LBPool
import NIOCore
import Testing

/// Response bodies larger than the HTTP/2 flow-control windows, and readers that stop early,
/// against real nginx: the pool opens the windows as bodies are read and resets what it drops.
@Suite(.serialized, .timeLimit(.minutes(3))) struct FlowControlTests {
    static let name = "api.demo.svc.cluster.local"
    /// Larger than a stream's window (1 MiB) and than the connection's (4 MiB).
    static let bodyBytes = 6 << 20

    func fleet() async throws -> ([NginxBackend], DNSServer, Int) {
        try await startFleet(["127.0.0.2"]) { try NginxBackend(ip: $0, port: $1, bodyBytes: Self.bodyBytes) }
    }

    @Test func bodiesLargerThanEveryWindowArriveWholeOnOneConnection() async throws {
        let (backends, dns, port) = try await fleet()
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns))
        let sizes = try await withRunningPool(pool) { pool in
            try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for number in 0..<4 {
                    group.addTask {
                        let response = try await pool.execute(get(id: "large-\(number)"))
                        let body = response.body.readableBytesView
                        return (body.count, body.allSatisfy { $0 == UInt8(ascii: "b") })
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        #expect(sizes.count == 4)
        #expect(sizes.allSatisfy { $0 == (Self.bodyBytes, true) }, "\(sizes.map(\.0))")
        let log = try backends[0].accessLog()
        #expect(Set(log.map(\.connection)).count == 1, "four concurrent streams share one connection")
    }

    @Test func aReaderThatStopsEarlyResetsItsStreamAndTheConnectionServesOn() async throws {
        let (backends, dns, port) = try await fleet()
        defer { withExtendedLifetime((backends, dns)) {} }
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: testConfiguration(dns: dns))
        try await withRunningPool(pool) { pool in
            for number in 0..<3 {
                let firstChunk = try await pool.execute(get(id: "early-\(number)")) { response in
                    var iterator = response.body.makeAsyncIterator()
                    return try await iterator.next()?.readableBytes ?? 0
                }
                #expect(firstChunk > 0 && firstChunk < Self.bodyBytes)
            }
            let whole = try await pool.execute(get(id: "after"))
            #expect(whole.body.readableBytes == Self.bodyBytes)
            let connections = pool.snapshot().addresses.flatMap(\.connections)
            #expect(connections.count == 1)
            #expect(connections.allSatisfy { $0.inFlight == 0 })
        }
        let log = try backends[0].accessLog()
        #expect(log.count == 4)
        #expect(Set(log.map(\.connection)).count == 1, "the resets did not cost the connection")
    }
}
