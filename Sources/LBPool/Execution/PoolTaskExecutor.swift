import NIOCore

/// A `TaskExecutor` that runs tasks on one of the event loops that carry the pool's connections.
///
/// A task on Swift's global executor that sends a request hands it to its connection's event
/// loop, and is handed the response back: two handoffs between threads per request. A task that
/// prefers this executor runs on its event loop (``home``), and the pool keeps a connection to
/// every address it sends to on that loop: the request is written and its response read on the
/// task's own thread, without any handoff. ``LBPool/taskExecutor`` runs on the pool's home loop,
/// where all of the pool's connections start; in the project's benchmark a request costs about
/// a third less client CPU this way than from Swift's global executor.
///
/// Give the preference to the tasks that send requests:
///
/// ```swift
/// await withTaskGroup(of: Void.self) { group in
///     for _ in 0..<64 {
///         group.addTask(executorPreference: pool.taskExecutor) {
///             let response = try? await pool.execute(request)
///             // ...
///         }
///     }
/// }
/// ```
///
/// or run a piece of code with it: `await withTaskExecutorPreference(pool.taskExecutor) { ... }`.
///
/// One loop is one thread. To put more cores to the pool's work, spread the tasks over
/// ``LBPool/taskExecutors``, one per loop of the pool's group: each loop whose tasks send to an
/// address gets a connection of its own to it (up to ``LBPool/Configuration/maxConnections``),
/// dialled when its first request finds none there and served from another loop meanwhile.
///
/// While such a task runs, the event loop's connections wait: do not block in it, and move long
/// computations to tasks without the preference. Actors keep their own executors.
public final class PoolTaskExecutor: TaskExecutor {
    /// The event loops of the pool's connections.
    public let eventLoopGroup: any EventLoopGroup

    /// Where tasks that come from outside the group's loops start.
    public let home: any EventLoop

    init(eventLoopGroup: any EventLoopGroup, home: any EventLoop) {
        self.eventLoopGroup = eventLoopGroup
        self.home = home
    }

    /// Runs `job` on ``home``.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        home.execute { job.runSynchronously(on: executor) }
    }
}
