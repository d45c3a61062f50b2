import HTTPTypes
import LBPool
import NIOCore
import Synchronization

/// Concurrent loops of `GET /` against a pool, each response checked; what they saw, for
/// assertions afterwards.
final class InteropLoad: Sendable {
    private struct State {
        /// The address that served each successful request, with the request's number (in the
        /// order the requests started).
        var successes: [(number: Int, ip: String)] = []
        var failures: [String] = []
        var stopped = false
        var counter = 0
        /// Workers whose loop ended (stopped, or at their bound).
        var workersDone = 0
        var workers = 0
    }

    private let state = Mutex(State())
    /// Requests per worker at most, however long the load runs.
    let maxRequestsPerWorker: Int
    /// Longest the load runs, whatever the body does.
    let maxDuration: Duration

    init(maxRequestsPerWorker: Int = 20_000, maxDuration: Duration = .seconds(60)) {
        self.maxRequestsPerWorker = maxRequestsPerWorker
        self.maxDuration = maxDuration
    }

    var failures: [String] { state.withLock { $0.failures } }
    var total: Int { state.withLock { $0.successes.count + $0.failures.count } }
    /// Whether every worker reached its bound (requests or time) or was stopped.
    var isOver: Bool { state.withLock { $0.workersDone == $0.workers } }

    /// Successful requests so far.
    var successCount: Int { state.withLock { $0.successes.count } }
    /// Requests started so far: the number of the latest.
    var started: Int { state.withLock { $0.counter } }

    /// The addresses that served the successful requests numbered above `number` (started
    /// after it), with how many each.
    func servers(startedAfter number: Int) -> [String: Int] {
        state.withLock { state in
            state.successes.filter { $0.number > number }.reduce(into: [:]) { $0[$1.ip, default: 0] += 1 }
        }
    }

    func successes(on address: String) -> Int {
        state.withLock { state in state.successes.count(where: { $0.ip == address }) }
    }

    /// Keeps `workers` request loops going against `pool` while `body` runs, then stops them
    /// and waits for their last requests. `body` runs where the caller runs (nonsending), so it
    /// may use the caller's non-Sendable state, such as a response body being read.
    nonisolated(nonsending) func running<Result: Sendable>(on pool: LBPool, workers: Int, during body: () async throws -> Result) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { group in
            let deadline = ContinuousClock.now + maxDuration
            state.withLock { $0.workers = workers }
            for worker in 0..<workers {
                group.addTask { await self.loop(pool, worker: worker, until: deadline) }
            }
            defer { state.withLock { $0.stopped = true } }
            return try await body()
        }
    }

    private func loop(_ pool: LBPool, worker: Int, until deadline: ContinuousClock.Instant) async {
        defer { state.withLock { $0.workersDone += 1 } }
        for _ in 0..<maxRequestsPerWorker {
            guard !state.withLock({ $0.stopped }), ContinuousClock.now < deadline else { return }
            let number = state.withLock {
                $0.counter += 1; return $0.counter
            }
            await send(pool, id: "load-\(worker)-\(number)", number: number)
        }
    }

    private func send(_ pool: LBPool, id: String, number: Int) async {
        do {
            let response = try await pool.execute(get(id: id))
            let problem: String? =
                if response.head.status != .ok {
                    "HTTP \(response.head.status.code)"
                } else if String(buffer: response.body) != response.servedBy.ip + "\n" {
                    "answered '\(String(buffer: response.body))' from \(response.servedBy.ip)"
                } else {
                    nil
                }
            state.withLock { state in
                if let problem { state.failures.append("\(id): \(problem)") } else { state.successes.append((number, response.servedBy.ip)) }
            }
        } catch {
            // Cancelled because the load was stopped (the body threw): not the server's doing.
            state.withLock { state in
                if !(state.stopped && error is CancellationError) { state.failures.append("\(id): \(error)") }
            }
        }
    }
}
