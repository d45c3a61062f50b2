import Synchronization

/// Waits for something another thread provides, the way every wait in this library does:
/// `register` runs once, with a fresh waiter id and the continuation, and either answers at once
/// or keeps the continuation (under its owner's lock) to resume later; `remove` takes it back
/// when the calling task is cancelled, and the wait then ends with `CancellationError`.
func cancellableWait<Value: Sendable>(
    register: (_ id: UInt64, _ continuation: CheckedContinuation<Value, any Error>) -> Result<Value, any Error>?,
    remove: @Sendable (_ id: UInt64) -> CheckedContinuation<Value, any Error>?
) async throws -> Value {
    let id = WaiterIDs.next()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
            if let answer = register(id, continuation) { continuation.resume(with: answer) }
        }
    } onCancel: {
        remove(id)?.resume(throwing: CancellationError())
    }
}

/// Ids of waiters, unique in the process.
private enum WaiterIDs {
    static let counter = Atomic<UInt64>(0)

    static func next() -> UInt64 {
        counter.wrappingAdd(1, ordering: .relaxed).newValue
    }
}
