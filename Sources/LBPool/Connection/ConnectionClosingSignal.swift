import Synchronization

/// Completes once, when the connection carrying a request or stream starts to go away.
///
/// Every request gets the signal of the physical connection it was sent on
/// (``LBPool/StreamingResponse/connectionClosing``). It fires exactly once, with the
/// ``ConnectionCloseReason``: the server's GOAWAY, lifetime rotation, the address leaving DNS,
/// pool shutdown, a keepalive timeout, or a connection error. For a drain (every reason but an
/// abrupt connection error) it fires **before** the connection's streams are torn down, so a
/// long-lived stream can finish what it is doing and continue on a new request, which the pool
/// sends over another connection.
///
/// Await it, race it against your work in a task group, or iterate it as an `AsyncSequence`
/// of one element:
///
/// ```swift
/// try await pool.execute(request) { response in
///     let closing = response.connectionClosing   // Sendable: hand it to a child task
///     try await withThrowingTaskGroup(of: Void.self) { group in
///         group.addTask {
///             let reason = try await closing.wait()
///             logger.info("connection closing: \(reason); finishing this stream, then reconnecting")
///         }
///         for try await chunk in response.body { handle(chunk) }
///         group.cancelAll()
///     }
/// }
/// ```
public final class ConnectionClosingSignal: Sendable, AsyncSequence {
    public typealias Element = ConnectionCloseReason
    public typealias Failure = any Error

    private struct State {
        var reason: ConnectionCloseReason?
        var waiters: [UInt64: CheckedContinuation<ConnectionCloseReason, any Error>] = [:]
    }

    private let state = Mutex(State())

    init() {}

    /// The reason, once the signal fired; `nil` before.
    public var reason: ConnectionCloseReason? {
        state.withLock { $0.reason }
    }

    /// Returns the reason when the signal fires (at once if it already has).
    /// - Throws: `CancellationError` if the calling task is cancelled first.
    public func wait() async throws -> ConnectionCloseReason {
        try await cancellableWait { id, continuation in
            state.withLock { state -> Result<ConnectionCloseReason, any Error>? in
                if let reason = state.reason { return .success(reason) }
                if Task.isCancelled { return .failure(CancellationError()) }
                state.waiters[id] = continuation
                return nil
            }
        } remove: { id in
            self.state.withLock { $0.waiters.removeValue(forKey: id) }
        }
    }

    /// Fires the signal; later calls do nothing.
    func fire(_ reason: ConnectionCloseReason) {
        let waiters = state.withLock { state -> [CheckedContinuation<ConnectionCloseReason, any Error>] in
            guard state.reason == nil else { return [] }
            state.reason = reason
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: reason) }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let signal: ConnectionClosingSignal
        fileprivate var delivered = false

        public mutating func next() async throws -> ConnectionCloseReason? {
            guard !delivered else { return nil }
            delivered = true
            return try await signal.wait()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(signal: self)
    }
}
