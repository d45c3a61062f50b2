import Synchronization

/// Hands out request numbers to the workers until the request count or the duration runs out.
final class Tickets: Sendable {
    private let issued = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private let limit: Options.Limit
    private let start: ContinuousClock.Instant

    init(limit: Options.Limit, start: ContinuousClock.Instant) {
        self.limit = limit
        self.start = start
    }

    /// No more tickets from now on.
    func stop() {
        stopped.store(true, ordering: .relaxed)
    }

    func next() -> Int? {
        guard !stopped.load(ordering: .relaxed) else { return nil }
        switch limit {
        case .requests(let count):
            let number = issued.wrappingAdd(1, ordering: .relaxed).newValue
            return number <= count ? number : nil
        case .duration(let duration):
            guard ContinuousClock.now - start < duration else { return nil }
            return issued.wrappingAdd(1, ordering: .relaxed).newValue
        }
    }
}
