import AsyncHTTPClient
import NIOCore
import NIOSSL
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The load of `make bench` sent through AsyncHTTPClient: `--requests` GETs from
/// `--concurrency` workers, spread in turn over the given URLs (one per backend; AsyncHTTPClient
/// has no balancing of its own, so this gives it the same three backends as the pool). Prints
/// one JSON line in the example client's shape.
@main
struct AHCLoad {
    static func main() async throws {
        var urls: [String] = []
        var requests = 100_000
        var concurrency = 63
        var http1 = false
        var caFile: String?
        var arguments = CommandLine.arguments.dropFirst()
        while let argument = arguments.popFirst() {
            switch argument {
            case "--requests": requests = Int(arguments.popFirst() ?? "") ?? requests
            case "--concurrency": concurrency = Int(arguments.popFirst() ?? "") ?? concurrency
            case "--http1": http1 = true
            case "--ca-file": caFile = arguments.popFirst()
            default: urls.append(argument)
            }
        }
        guard !urls.isEmpty else {
            print("usage: AHCLoad URL... [--requests N] [--concurrency N] [--http1] [--ca-file PEM]")
            exit(2)
        }

        var configuration = HTTPClient.Configuration()
        configuration.httpVersion = http1 ? .http1Only : .automatic
        // HTTP/1.1: one connection per concurrent request, as many as the workers need.
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = (concurrency + urls.count - 1) / urls.count
        if let caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(caFile)
            configuration.tlsConfiguration = tls
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)

        // Warm up: connections exist before the clock starts, as for the pool.
        _ = await run(client: client, urls: urls, requests: concurrency * 4, concurrency: concurrency)
        let clock = ContinuousClock()
        let start = clock.now
        let result = await run(client: client, urls: urls, requests: requests, concurrency: concurrency)
        let elapsed = clock.now - start
        try await client.shutdown()

        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let latencies = result.latencies.sorted()
        func percentile(_ fraction: Double) -> Double {
            guard !latencies.isEmpty else { return 0 }
            return latencies[min(Int((fraction * Double(latencies.count - 1)).rounded()), latencies.count - 1)]
        }
        func format(_ value: Double) -> String { "\((value * 1000).rounded() / 1000)" }
        let total = result.succeeded + result.failed
        print("{\"requests\":\(total),\"succeeded\":\(result.succeeded),\"failed\":\(result.failed),"
              + "\"elapsedSeconds\":\(format(seconds)),\"requestsPerSecond\":\(format(Double(total) / seconds)),"
              + "\"latencyMs\":{\"p50\":\(format(percentile(0.5))),\"p99\":\(format(percentile(0.99)))},"
              + "\"firstError\":\"\(result.firstError ?? "")\"}")
        exit(result.failed == 0 ? 0 : 1)
    }

    struct Outcome: Sendable {
        var succeeded = 0
        var failed = 0
        var latencies: [Double] = []
        var firstError: String?

        mutating func merge(_ other: Outcome) {
            succeeded += other.succeeded
            failed += other.failed
            latencies += other.latencies
            firstError = firstError ?? other.firstError
        }
    }

    static func run(client: HTTPClient, urls: [String], requests: Int, concurrency: Int) async -> Outcome {
        let next = Counter()
        return await withTaskGroup(of: Outcome.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var outcome = Outcome()
                    outcome.latencies.reserveCapacity(requests / concurrency + 1)
                    let clock = ContinuousClock()
                    while true {
                        let number = next.take()
                        guard number < requests else { return outcome }
                        let started = clock.now
                        do {
                            let response = try await client.execute(HTTPClientRequest(url: urls[number % urls.count]), timeout: .seconds(30))
                            for try await _ in response.body {}
                            if response.status == .ok { outcome.succeeded += 1 } else {
                                outcome.failed += 1
                                outcome.firstError = outcome.firstError ?? "HTTP \(response.status.code)"
                            }
                        } catch {
                            outcome.failed += 1
                            outcome.firstError = outcome.firstError ?? "\(error)"
                        }
                        let latency = clock.now - started
                        outcome.latencies.append(Double(latency.components.attoseconds) / 1e15 + Double(latency.components.seconds) * 1000)
                    }
                }
            }
            var merged = Outcome()
            for await outcome in group { merged.merge(outcome) }
            return merged
        }
    }
}

/// Hands out request numbers to the workers.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)

    func take() -> Int {
        value.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}
