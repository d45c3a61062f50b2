import Synchronization

/// Requests for an early lookup, sent by the pool to its ``Resolver``.
///
/// Requests are coalesced: any number of ``request()`` calls before the next ``wait()`` count as one.
public final class RefreshRequests: Sendable {
    private struct State {
        var pending = false
        var waiter: (id: UInt64, continuation: CheckedContinuation<Void, any Error>)?
    }

    private let state = Mutex(State())

    public init() {}

    /// Asks the resolver to look the name up again soon.
    public func request() {
        let continuation: CheckedContinuation<Void, any Error>? = state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter.continuation
            }
            state.pending = true
            return nil
        }
        continuation?.resume(returning: ())
    }

    /// Whether a request waits to be consumed by ``wait()``.
    var isPending: Bool { state.withLock { $0.pending } }

    /// Returns when a request is pending (consuming it), or when the calling task is cancelled.
    public func wait() async {
        try? await cancellableWait { id, continuation in
            state.withLock { state -> Result<Void, any Error>? in
                if state.pending {
                    state.pending = false
                    return .success(())
                }
                if Task.isCancelled { return .success(()) }
                state.waiter = (id, continuation)
                return nil
            }
        } remove: { id in
            self.state.withLock { state in
                guard let waiter = state.waiter, waiter.id == id else { return nil }
                state.waiter = nil
                return waiter.continuation
            }
        }
    }
}
