import Synchronization

/// Hands every ``PoolEvent`` to each current subscriber. Emitting never blocks: each subscriber
/// buffers up to `bufferSize` events and drops the oldest past that.
final class EventBroadcaster: Sendable {
    private struct State {
        var subscribers: [UInt64: AsyncStream<PoolEvent>.Continuation] = [:]
        var nextID: UInt64 = 0
        var finished = false
    }

    private let state = Mutex(State())
    private let bufferSize: Int

    init(bufferSize: Int = 4096) {
        self.bufferSize = bufferSize
    }

    func subscribe() -> AsyncStream<PoolEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: PoolEvent.self, bufferingPolicy: .bufferingNewest(bufferSize))
        let id = state.withLock { state -> UInt64? in
            guard !state.finished else { return nil }
            state.nextID &+= 1
            state.subscribers[state.nextID] = continuation
            return state.nextID
        }
        guard let id else {
            // The pool already stopped: nothing will ever come.
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    func emit(_ event: PoolEvent) {
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(event) }
    }

    /// Ends every subscriber's stream (the pool stopped).
    func finish() {
        let subscribers = state.withLock { state -> [AsyncStream<PoolEvent>.Continuation] in
            state.finished = true
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}
