import Benchmark
import HTTPTypes
@_spi(Benchmarks) import LBPool
import Synchronization

/// Micro-benchmarks of the request path's parts. Times are per inner iteration (the scaling
/// factor), allocations too; `make bench` runs them and writes the table to RESULTS.md.
let benchmarks: @Sendable () -> Void = {
    let fast = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        timeUnits: .nanoseconds,
        scalingFactor: .mega,
        maxDuration: .seconds(2)
    )

    /// `count` distinct addresses on one port, as a resolver would report them.
    func addresses(count: Int) -> [ResolvedAddress] {
        (0..<count).map { ResolvedAddress(ip: "127.1.\($0 / 250).\($0 % 250 + 1)", port: 8080) }
    }

    for count in [3, 100, 1000] {
        let endpoints = ReadyEndpoints(testing: addresses(count: count).map { .init(address: $0) })
        let roundRobin = RoundRobinPicker(start: 0)
        Benchmark("pick: round robin, \(count) endpoints", configuration: fast) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(roundRobin.pick(from: endpoints))
            }
        }
        let twoChoices = PowerOfTwoChoicesPicker(seed: 1)
        Benchmark("pick: power of two choices, \(count) endpoints", configuration: fast) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(twoChoices.pick(from: endpoints))
            }
        }
        let path = BenchmarkHooks.PickPath(endpoints: count, picker: RoundRobinPicker(start: 0))
        Benchmark("request's pick path (snapshot, pick, reserve, release), \(count) endpoints", configuration: fast) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(path.pickReserveRelease())
            }
        }
    }

    // The defaults are valid: the initializer cannot throw for them.
    guard let budget = try? WindowedRetryBudget() else { fatalError("default retry budget rejected") }
    Benchmark("retry budget: deposit", configuration: fast) { benchmark in
        for _ in benchmark.scaledIterations {
            budget.deposit()
        }
    }
    Benchmark("retry budget: deposit and withdraw", configuration: fast) { benchmark in
        for _ in benchmark.scaledIterations {
            budget.deposit()
            blackHole(budget.withdraw())
        }
    }

    let thousand = addresses(count: 1000)
    let moved = addresses(count: 1010).suffix(1000).map { $0 }
    let slow = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal],
        timeUnits: .microseconds,
        maxDuration: .seconds(2)
    )
    Benchmark("balancer: 1000 addresses appear", configuration: slow) { benchmark in
        var change = BenchmarkHooks.AddressChange(minConnections: 1)
        benchmark.startMeasurement()
        blackHole(change.resolve(thousand))
    }
    Benchmark("balancer: 1000 addresses, 10 replaced", configuration: slow) { benchmark in
        var change = BenchmarkHooks.AddressChange(minConnections: 1)
        _ = change.resolve(thousand)
        benchmark.startMeasurement()
        blackHole(change.resolve(moved))
    }

    // Sequential requests. Against the in-process server the count covers both sides; against
    // nginx (another process) it is the client's alone.
    let requestConfiguration = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal, .throughput], timeUnits: .microseconds,
        scalingFactor: .kilo, maxDuration: .seconds(3))
    for peer in [RequestFixture.Peer.inProcess, .nginx] {
        let requests = RequestFixture(peer: peer)
        let name = peer == .inProcess ? "request through the pool to an in-process h2c server (both sides' allocations)"
            : "request through the pool to nginx (the client's allocations)"
        Benchmark(
            name,
            configuration: requestConfiguration,
            closure: { benchmark in
                let pool = try requests.pool()
                let request = HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/")
                for _ in benchmark.scaledIterations {
                    let response = try await pool.execute(request)
                    blackHole(response.body.readableBytes)
                }
            },
            setup: { try await requests.start() },
            teardown: { try await requests.stop() }
        )
    }
}

/// A running pool and server for a request benchmark, started in its setup.
final class RequestFixture: Sendable {
    enum Peer: Sendable { case inProcess, nginx }

    private struct Running: Sendable {
        var server: InProcessServer?
        var nginx: NginxPeer?
        var pool: LBPool
        var task: Task<Void, any Error>
    }

    let peer: Peer
    private let running = Mutex<Running?>(nil)

    init(peer: Peer) {
        self.peer = peer
    }

    struct NotStarted: Error {}

    func pool() throws -> LBPool {
        guard let pool = running.withLock({ $0?.pool }) else { throw NotStarted() }
        return pool
    }

    func start() async throws {
        var server: InProcessServer?
        var nginx: NginxPeer?
        let target: String
        switch peer {
        case .inProcess:
            server = try await InProcessServer.start()
            target = "http://127.0.0.1:\(server?.port ?? 0)"
        case .nginx:
            nginx = try await NginxPeer.start()
            target = "http://127.0.0.2:\(nginx?.port ?? 0)"
        }
        let pool = try LBPool(target: target)
        let task = Task { try await pool.run() }
        try await pool.waitUntilReady(timeout: .seconds(10))
        running.withLock { $0 = Running(server: server, nginx: nginx, pool: pool, task: task) }
    }

    func stop() async throws {
        guard let running = running.withLock({ state in defer { state = nil }; return state }) else { return }
        running.pool.shutDown()
        try await running.task.value
        try await running.server?.close()
        running.nginx?.stop()
    }
}
