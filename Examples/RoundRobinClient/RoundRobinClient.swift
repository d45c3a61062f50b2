import HTTPTypes
import LBPool
import NIOCore
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sends requests through an `LBPool` and reports how they spread over the addresses.
@main
struct RoundRobinClient {
    static func main() async {
        let options: Options
        do {
            options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
        } catch {
            if !error.description.isEmpty { printError("error: \(error.description)") }
            printError(Options.usage)
            exit(2)
        }

        var configuration = LBPool.Configuration()
        configuration.minConnections = options.minConnections
        if let dnsServer = options.dnsServer {
            configuration.dns.nameServers = [dnsServer]
        }
        configuration.maxConnectionLifetime = options.maxLifetime
        if let maxAttempts = options.maxAttempts { configuration.retryPolicy.maxAttempts = maxAttempts }
        if !options.retryBudget { configuration.retryBudget = UnlimitedRetryBudget() }
        if let keepalive = options.keepalive {
            configuration.keepalive = .init(interval: keepalive, timeout: min(keepalive, .seconds(10)))
        }
        if let caFile = options.caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(caFile)
            configuration.tls = tls
        }
        let pool: LBPool
        do {
            pool = try LBPool(target: options.target, configuration: configuration)
        } catch {
            printError("error: \(error)")
            printError(Options.usage)
            exit(2)
        }

        let (stats, elapsed) = await run(pool: pool, options: options)
        if options.json {
            print(stats.json(elapsedSeconds: elapsed.seconds))
        } else {
            print(stats.table(elapsedSeconds: elapsed.seconds))
        }
        exit(stats.failed == 0 ? 0 : 1)
    }

    static func run(pool: LBPool, options: Options) async -> (Stats, Duration) {
        let clock = ContinuousClock()
        var start = clock.now
        let runID = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let stats = await withTaskGroup(of: Stats.self) { group in
            group.addTask {
                try? await pool.run()
                return Stats()
            }
            if options.events {
                let events = pool.events()
                group.addTask {
                    for await event in events { printError("event: \(event)") }
                    return Stats()
                }
            }
            // Warm up: an even split needs every address ready before the first request.
            // Requests would wait for a ready address anyway, so a timeout here is no failure.
            try? await pool.waitUntilReady(timeout: .seconds(5))
            start = clock.now
            let tickets = Tickets(limit: options.limit, start: start)
            let workers = await withTaskGroup(of: Stats.self) { workers in
                for _ in 0..<options.concurrency {
                    workers.addTask {
                        await worker(pool: pool, options: options, runID: runID, tickets: tickets)
                    }
                }
                var merged = Stats()
                for await stats in workers { merged.merge(stats) }
                return merged
            }
            pool.shutDown()
            for await _ in group {}
            return workers
        }
        return (stats, clock.now - start)
    }

    static func worker(pool: LBPool, options: Options, runID: String, tickets: Tickets) async -> Stats {
        var stats = Stats()
        let clock = ContinuousClock()
        let method = HTTPRequest.Method(options.method) ?? .get
        let body: RequestBody? = options.bodyBytes > 0 ? .bytes(ByteBuffer(repeating: UInt8(ascii: "x"), count: options.bodyBytes)) : nil
        let requestID = HTTPField.Name("x-request-id")!
        while let number = tickets.next() {
            var request = HTTPRequest(method: method, scheme: nil, authority: nil, path: options.path)
            request.headerFields[requestID] = "\(runID)-\(number)"
            let started = clock.now
            do {
                let (address, status) = try await pool.execute(request, body: body) { response in
                    for try await _ in response.body {}
                    return (response.servedBy, response.head.status)
                }
                let latency = (clock.now - started).milliseconds
                let error = status.kind == .successful || status.kind == .redirection ? nil : "HTTP \(status.code)"
                stats.record(address: address.ip, latencyMs: latency, error: error)
            } catch let error as LBPoolError {
                stats.record(address: error.address?.ip, latencyMs: (clock.now - started).milliseconds, error: "\(error)")
            } catch {
                stats.record(address: nil, latencyMs: (clock.now - started).milliseconds, error: "\(error)")
            }
        }
        return stats
    }
}

extension Duration {
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }

    var milliseconds: Double { seconds * 1000 }
}

/// Writes a line to standard error.
func printError(_ text: String) {
    let line = text + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { buffer in
        write(2, buffer.baseAddress, buffer.count - 1)
    }
}
