import HTTPTypes
import LBPool
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Request tasks that prefer ``LBPool/taskExecutor`` run on the pool's event loops and send on
/// connections of their own loop, against real nginx backends.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TaskExecutorIntegrationTests {
    static let name = "api.demo.svc.cluster.local"

    /// Whether the current thread is one of `group`'s event loops.
    static func onLoop(of group: MultiThreadedEventLoopGroup) -> Bool {
        guard let current = MultiThreadedEventLoopGroup.currentEventLoop else { return false }
        return group.makeIterator().contains { $0 === current }
    }

    /// Runs `body` with a new group of `threads` event loops, shut down after it.
    static func withGroup<Result>(threads: Int, _ body: (MultiThreadedEventLoopGroup) async throws -> Result) async throws -> Result {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let result: Result
        do {
            result = try await body(group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
        return result
    }

    /// Three nginx behind dnsmasq, and a pool on `group` for them; the fleet runs as long as
    /// the returned one lives.
    static func poolOnThreePods(_ group: MultiThreadedEventLoopGroup) async throws -> (LBPool, ([NginxBackend], DNSServer)) {
        let (backends, dns, port) = try await startFleet(["127.0.0.2", "127.0.0.3", "127.0.0.4"], ttl: 30)
        var configuration = testConfiguration(dns: dns)
        configuration.eventLoopGroup = group
        return (try LBPool(target: "http://\(Self.name):\(port)", configuration: configuration), (backends, dns))
    }

    @Test func requestTasksRunOnThePoolsEventLoopsAndSpreadEvenly() async throws {
        try await Self.withGroup(threads: 2) { group in try await requestTasksRunOnLoops(of: group) }
    }

    func requestTasksRunOnLoops(of group: MultiThreadedEventLoopGroup) async throws {
        let (pool, fleet) = try await Self.poolOnThreePods(group)
        defer { withExtendedLifetime(fleet) {} }
        #expect(pool.taskExecutor.eventLoopGroup === group)
        let workers = 16, perWorker = 60
        let results = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            return try await withThrowingTaskGroup(of: (served: [String], offLoop: Int).self) { tasks in
                for worker in 0..<workers {
                    tasks.addTask(executorPreference: pool.taskExecutor) {
                        var served: [String] = [], offLoop = 0
                        for number in 0..<perWorker {
                            // Streamed bodies take the path where the task writes each chunk.
                            let body: RequestBody =
                                number % 3 == 0
                                ? .stream(Chunks(count: 4, size: 1000), length: 4000)
                                : .bytes(ByteBuffer(string: "body of \(worker)-\(number)"))
                            var request = get(id: "\(worker)-\(number)")
                            request.method = .post
                            let response = try await pool.execute(request, body: body)
                            #expect(response.head.status == .ok)
                            if !Self.onLoop(of: group) { offLoop += 1 }
                            served.append(response.servedBy.ip)
                        }
                        return (served, offLoop)
                    }
                }
                return try await tasks.reduce(into: [(served: [String], offLoop: Int)]()) { $0.append($1) }
            }
        }
        let served = results.flatMap(\.served)
        #expect(served.count == workers * perWorker)
        #expect(results.map(\.offLoop).reduce(0, +) == 0, "requests resumed off the pool's event loops")
        let perAddress = Dictionary(grouping: served, by: { $0 }).mapValues(\.count)
        #expect(perAddress.count == 3, "served: \(perAddress)")
        for (ip, count) in perAddress {
            #expect(abs(count - served.count / 3) <= workers, "\(ip) served \(count) of \(served.count)")
        }
    }

    /// Handoffs between threads over every connection of the pool.
    static func handoffs(_ pool: LBPool) -> Int {
        pool.snapshot().addresses.flatMap(\.connections).map(\.handoffs).reduce(0, +)
    }

    @Test func aRequestOnThePoolsExecutorIsSentFromItsConnectionsOwnLoop() async throws {
        try await Self.withGroup(threads: 2) { group in try await requestsStayOnTheHomeLoop(group) }
    }

    func requestsStayOnTheHomeLoop(_ group: MultiThreadedEventLoopGroup) async throws {
        let (pool, fleet) = try await Self.poolOnThreePods(group)
        defer { withExtendedLifetime(fleet) {} }
        let home = pool.taskExecutor.home
        let (served, offHome, handoffs) = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            return try await withThrowingTaskGroup(of: (served: [String], offHome: Int).self) { tasks in
                for worker in 0..<8 {
                    tasks.addTask(executorPreference: pool.taskExecutor) {
                        var served: [String] = [], offHome = 0
                        for number in 0..<75 {
                            let response = try await pool.execute(get(id: "\(worker)-\(number)"))
                            #expect(response.head.status == .ok)
                            if !home.inEventLoop { offHome += 1 }
                            served.append(response.servedBy.ip)
                        }
                        return (served, offHome)
                    }
                }
                var served: [String] = [], offHome = 0
                for try await result in tasks {
                    served += result.served
                    offHome += result.offHome
                }
                return (served, offHome, Self.handoffs(pool))
            }
        }
        #expect(offHome == 0, "a task started from outside the loops starts on the home loop and stays there")
        #expect(handoffs == 0, "every request was written by a task on its connection's loop")
        // The picker's split is untouched: round robin, one pick per request.
        let perAddress = Dictionary(grouping: served, by: { $0 }).mapValues(\.count)
        #expect(perAddress.values.sorted() == [200, 200, 200], "served: \(perAddress)")
    }

    @Test func tasksOnEveryLoopGetConnectionsOnTheirOwnLoop() async throws {
        try await Self.withGroup(threads: 2) { group in try await eachLoopGetsItsConnections(group) }
    }

    func eachLoopGetsItsConnections(_ group: MultiThreadedEventLoopGroup) async throws {
        let (pool, fleet) = try await Self.poolOnThreePods(group)
        defer { withExtendedLifetime(fleet) {} }
        #expect(pool.taskExecutors.count == 2)
        #expect(pool.taskExecutors[0] === pool.taskExecutor)
        /// `perTask` requests from each of four tasks, two started on each loop.
        func send(_ perTask: Int, label: String) async throws -> [String] {
            try await withThrowingTaskGroup(of: [String].self) { tasks in
                for worker in 0..<4 {
                    tasks.addTask(executorPreference: pool.taskExecutors[worker % 2]) {
                        var served: [String] = []
                        for number in 0..<perTask {
                            served.append(try await pool.execute(get(id: "\(label)-\(worker)-\(number)")).servedBy.ip)
                        }
                        return served
                    }
                }
                return try await tasks.reduce(into: []) { $0 += $1 }
            }
        }
        let (before, after, loops) = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 3, timeout: .seconds(10))
            var events = pool.events().makeAsyncIterator()
            // Loop 1's tasks find no connection there and ask for one per address (served
            // meanwhile from the home loop's): three more connections become ready.
            _ = try await send(6, label: "warm")
            var ready = 0
            while ready < 3, let event = await events.next() {
                if case .ready = event.kind { ready += 1 }
            }
            let before = Self.handoffs(pool)
            let served = try await send(150, label: "load")
            let perAddress = Dictionary(grouping: served, by: { $0 }).mapValues(\.count)
            #expect(perAddress.values.sorted() == [200, 200, 200], "served: \(perAddress)")
            let loops = pool.snapshot().addresses.map { Set($0.connections.filter { $0.state == .ready }.map(\.eventLoop)) }
            return (before, Self.handoffs(pool), loops)
        }
        #expect(before > 0, "the first requests of loop 1 were sent from it to the home loop's connections")
        #expect(after == before, "once each loop had its connections, no request crossed threads")
        #expect(loops == [[0, 1], [0, 1], [0, 1]], "every address has a connection on each loop")
    }

    @Test func withoutThePreferenceTasksStayOffTheEventLoops() async throws {
        // The check above can tell: a task without the preference is not on a loop.
        try await Self.withGroup(threads: 1) { group in try await tasksWithAndWithoutPreference(group) }
    }

    func tasksWithAndWithoutPreference(_ group: MultiThreadedEventLoopGroup) async throws {
        let (backends, dns, port) = try await startFleet(["127.0.0.2"], ttl: 30)
        defer { withExtendedLifetime((backends, dns)) {} }
        var configuration = testConfiguration(dns: dns)
        configuration.eventLoopGroup = group
        let pool = try LBPool(target: "http://\(Self.name):\(port)", configuration: configuration)
        let (plain, preferred) = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(10))
            let plain = try await Task {
                _ = try await pool.execute(get(id: "plain"))
                return Self.onLoop(of: group)
            }.value
            let preferred = try await Task(executorPreference: pool.taskExecutor) {
                _ = try await pool.execute(get(id: "preferred"))
                return Self.onLoop(of: group)
            }.value
            return (plain, preferred)
        }
        #expect(!plain)
        #expect(preferred)
    }
}

/// `count` chunks of `size` bytes, produced one at a time.
struct Chunks: AsyncSequence, Sendable {
    let count: Int
    let size: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        var left: Int
        let size: Int

        mutating func next() async -> ByteBuffer? {
            guard left > 0 else { return nil }
            left -= 1
            await Task.yield()
            return ByteBuffer(repeating: UInt8(ascii: "c"), count: size)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(left: count, size: size) }
}
