import HTTPTypes
import LBPool
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

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
        if options.http1 { configuration.httpVersion = .http1 }
        if options.negotiate { configuration.httpVersion = .negotiated }
        if let dnsServer = options.dnsServer {
            configuration.dns.nameServers = [dnsServer]
        }
        configuration.maxConnectionLifetime = options.maxLifetime
        configuration.picker = options.picker
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
        if let size = options.subsetSize {
            configuration.subset = .init(size: size, key: options.subsetKey)
        }
        if let loops = options.eventLoops {
            configuration.eventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: loops)
        }
        let tracer = options.trace ? ReferenceTracer() : nil
        if let tracer { configuration.tracer = tracer }
        var logger = Logger(label: "RoundRobinClient") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = .warning
        let pool: LBPool
        do {
            pool = try LBPool(target: options.target, configuration: configuration, logger: logger)
        } catch {
            printError("error: \(error)")
            printError(Options.usage)
            exit(2)
        }

        // SIGTERM or SIGINT: stop issuing requests, let those in flight finish, drain the pool,
        // print the summary. The load stops first (services stop in reverse order).
        let load = LoadRun(pool: pool, options: options, tracer: tracer)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: pool),
                    .init(service: load, successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
        do {
            try await group.run()
        } catch {
            printError("error: \(error)")
            exit(1)
        }
        if options.follow {
            let followed = load.followed
            exit(followed.map { $0.total == $0.bytes && $0.bytes > 0 } == true ? 0 : 1)
        }
        let (stats, elapsed) = load.result
        if options.json {
            print(stats.json(elapsedSeconds: elapsed.seconds, spans: load.tracer?.ended.value))
        } else {
            print(stats.table(elapsedSeconds: elapsed.seconds))
        }
        exit(stats.failed == 0 ? 0 : 1)
    }

}

/// The requests of one run, as a service: it ends when the run is complete or on graceful
/// shutdown, after the requests in flight finished.
final class LoadRun: Service, Sendable {
    let pool: LBPool
    let options: Options
    let tracer: ReferenceTracer?
    private let outcome = Mutex<(Stats, Duration)>((Stats(), .zero))

    init(pool: LBPool, options: Options, tracer: ReferenceTracer?) {
        self.pool = pool
        self.options = options
        self.tracer = tracer
    }

    var result: (Stats, Duration) { outcome.withLock { $0 } }
    private let followOutcome = Mutex<Follow.Outcome?>(nil)
    var followed: Follow.Outcome? { followOutcome.withLock { $0 } }

    func run() async throws {
        let clock = ContinuousClock()
        let runID = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let pool = pool, options = options
        let live = options.live ?? (isatty(1) != 0 && !options.json)
        let recorder = live || options.timeline != nil ? SecondRecorder() : nil
        await withDiscardingTaskGroup { group in
            if live {
                // Inline with the live lines.
                let events = pool.events()
                group.addTask {
                    for await event in events { printLine("      · \(event)") }
                }
            } else if options.events {
                let events = pool.events()
                group.addTask {
                    for await event in events { printError("event: \(event)") }
                }
            }
            // Warm up: an even split needs every address ready before the first request.
            // Requests would wait for a ready address anyway, so a timeout here is no failure.
            try? await pool.waitUntilReady(timeout: .seconds(5))
            if options.follow {
                let outcome = await Follow.run(pool: pool, path: options.path)
                followOutcome.withLock { $0 = outcome }
                group.cancelAll()
                return
            }
            let start = clock.now
            let tickets = Tickets(limit: options.limit, start: start)
            if let recorder {
                group.addTask { await LiveView(pool: pool, recorder: recorder, live: live, timeline: options.timeline).run() }
            }
            let stats = await withGracefulShutdownHandler {
                await withTaskGroup(of: Stats.self) { workers in
                    for worker in 0..<options.concurrency {
                        // On the pool's event loops, a response wakes its worker on the thread
                        // that read it, and the next request is written from there. With
                        // --event-loops N the workers are spread over all N loops; otherwise
                        // they start on the pool's home loop, as tasks on its executor do.
                        // Over HTTP/2 the workers share the home loop, where a tick's requests go
                        // out in one write; over HTTP/1.1 nothing is batched across requests, so
                        // they spread over every loop of the pool.
                        let spread = options.eventLoops != nil || options.http1
                        let executors = spread ? pool.taskExecutors : [pool.taskExecutor]
                        let executor: (any TaskExecutor)? = options.onEventLoops ? executors[worker % executors.count] : nil
                        workers.addTask(executorPreference: executor) {
                            await Self.worker(pool: pool, options: options, runID: runID, tickets: tickets, recorder: recorder)
                        }
                    }
                    var merged = Stats()
                    for await stats in workers { merged.merge(stats) }
                    return merged
                }
            } onGracefulShutdown: {
                tickets.stop()
            }
            outcome.withLock { $0 = (stats, clock.now - start) }
            group.cancelAll()
        }
    }

    static func worker(pool: LBPool, options: Options, runID: String, tickets: Tickets, recorder: SecondRecorder?) async -> Stats {
        var stats = Stats()
        let clock = ContinuousClock()
        let method = HTTPRequest.Method(options.method) ?? .get
        let body: RequestBody? = options.bodyBytes > 0 ? .bytes(ByteBuffer(repeating: UInt8(ascii: "x"), count: options.bodyBytes)) : nil
        let requestID = HTTPField.Name("x-request-id")!
        while let number = tickets.next() {
            var request = HTTPRequest(method: method, scheme: nil, authority: nil, path: options.path)
            if options.requestIDs {
                // Unique per request: kept out of the HPACK dynamic table.
                var field = HTTPField(name: requestID, value: "\(runID)-\(number)")
                field.indexingStrategy = .avoid
                request.headerFields.append(field)
            }
            let started = clock.now
            do {
                let (address, status) = try await pool.execute(request, body: body) { response in
                    for try await _ in response.body {}
                    return (response.servedBy, response.head.status)
                }
                let latency = (clock.now - started).milliseconds
                let error = status.kind == .successful || status.kind == .redirection ? nil : "HTTP \(status.code)"
                stats.record(address: address.ip, latencyMs: latency, error: error)
                recorder?.record(address: address.ip, latencyMs: latency, failed: error != nil)
            } catch let error as LBPoolError {
                let latency = (clock.now - started).milliseconds
                stats.record(address: error.address?.ip, latencyMs: latency, error: "\(error)")
                recorder?.record(address: error.address?.ip, latencyMs: latency, failed: true)
            } catch {
                let latency = (clock.now - started).milliseconds
                stats.record(address: nil, latencyMs: latency, error: "\(error)")
                recorder?.record(address: nil, latencyMs: latency, failed: true)
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
