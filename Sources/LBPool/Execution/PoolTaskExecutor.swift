import NIOCore

/// A `TaskExecutor` that runs tasks on the event loops that carry the pool's connections.
///
/// A task on Swift's global executor that sends a request hops to its connection's event loop,
/// and hops back when the response wakes it: two handoffs between threads per request. A task
/// that prefers this executor is woken on the event loop that delivered its response instead, and
/// sends its next request from there; when that request's connection lives on the same loop,
/// it is written without any handoff. In the project's benchmark this takes up to a third of
/// the client's CPU time per request away: most with a group of one event loop, where every
/// connection shares the task's thread.
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
/// While such a task runs, the event loop's connections wait: do not block in it, and move long
/// computations to tasks without the preference. Actors keep their own executors.
public final class PoolTaskExecutor: TaskExecutor {
    /// The event loops of the pool's connections.
    public let eventLoopGroup: any EventLoopGroup

    init(eventLoopGroup: any EventLoopGroup) {
        self.eventLoopGroup = eventLoopGroup
    }

    /// Runs `job` on the current thread's event loop if it is one of the group's, otherwise on
    /// the group's next loop.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoopGroup.any().execute { job.runSynchronously(on: executor) }
    }
}
