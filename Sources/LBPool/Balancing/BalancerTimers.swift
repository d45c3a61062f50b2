import NIOCore

/// Where the balancer's timers run: reconnect backoffs, rotations, ejections. An event loop in
/// production; a test moves a manual clock instead.
protocol BalancerTimers: Sendable {
    /// Calls `fire` once after `delay`, unless the returned timer is cancelled first. Never
    /// calls it before returning.
    func schedule(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> any CancellableTimer
}

protocol CancellableTimer: Sendable {
    func cancel()
}

extension Scheduled: CancellableTimer {}

/// Timers as tasks scheduled on one event loop: cancelling one removes it from the loop's queue,
/// so a cancelled timer costs nothing until it would have fired.
struct EventLoopTimers: BalancerTimers {
    let eventLoop: any EventLoop

    func schedule(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> any CancellableTimer {
        eventLoop.scheduleTask(in: TimeAmount(delay), fire)
    }
}
