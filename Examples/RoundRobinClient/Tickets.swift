import Synchronization

/// Hands out request numbers to the workers until the request count or the duration runs out.
final class Tickets: Sendable {
    private let issued = Atomic<Int>(0)
    private let limit: Options.Limit
    private let start: ContinuousClock.Instant

    init(limit: Options.Limit, start: ContinuousClock.Instant) {
        self.limit = limit
        self.start = start
    }

    func next() -> Int? {
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
