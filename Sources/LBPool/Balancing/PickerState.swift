import Synchronization

/// The latest picker snapshot, and the requests waiting for one with a ready endpoint.
final class PickerState: Sendable {
    struct Snapshot: Sendable {
        var endpoints = ReadyEndpoints([])
        /// The last resolver update, once one arrived.
        var resolution: ResolverUpdate?
        var isShuttingDown = false
        /// Why the latest dial failed, for error messages while no endpoint is ready.
        var lastConnectionError: ConnectionCloseReason?
    }

    private struct State {
        var snapshot = Snapshot()
        var version: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    }

    private let state = Mutex(State())

    func current() -> (snapshot: Snapshot, version: UInt64) {
        state.withLock { ($0.snapshot, $0.version) }
    }

    /// What every pick reads, and no more (copying the whole snapshot costs retains).
    func forPick() -> (endpoints: ReadyEndpoints, isShuttingDown: Bool, version: UInt64) {
        state.withLock { ($0.snapshot.endpoints, $0.snapshot.isShuttingDown, $0.version) }
    }

    func update(_ body: (inout Snapshot) -> Void) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            body(&state.snapshot)
            state.version &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: ()) }
    }

    /// A stream became free on a connection that was full: wakes waiting requests.
    func capacityFreed() {
        update { _ in }
    }

    /// Returns when the snapshot is newer than `version`, at `deadline`, or on cancellation.
    func waitForChange(after version: UInt64, until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForChange(after: version) }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForChange(after version: UInt64) async {
        try? await cancellableWait { id, continuation in
            state.withLock { state -> Result<Void, any Error>? in
                if state.version != version || Task.isCancelled { return .success(()) }
                state.waiters[id] = continuation
                return nil
            }
        } remove: { id in
            self.state.withLock { $0.waiters.removeValue(forKey: id) }
        }
    }
}
