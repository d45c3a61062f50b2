import Synchronization

/// A lock-free source of pseudo-random numbers for pickers: splitmix64 over an atomic counter.
/// One atomic add per number; good enough to spread load, not for anything secret.
final class PickerRandom: Sendable {
    private let state: Atomic<UInt64>

    init(seed: UInt64) {
        state = Atomic(seed)
    }

    func next() -> UInt64 {
        var z = state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound`, `bound` > 0.
    func below(_ bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }
}

/// Uniformly random over the ready endpoints.
public final class RandomPicker: Picker {
    private let random: PickerRandom

    /// - Parameter seed: Default: a random one; a fixed seed makes picks reproducible (tests).
    public init(seed: UInt64 = .random(in: 0...UInt64.max)) {
        random = PickerRandom(seed: seed)
    }

    public func pick(from endpoints: ReadyEndpoints) -> Int {
        endpoints.isEmpty ? 0 : random.below(endpoints.count)
    }
}

/// Power of two choices: two endpoints at random, the one with fewer requests in flight. Sends
/// little to a slow or overloaded endpoint while staying O(1) and close to random otherwise.
public final class PowerOfTwoChoicesPicker: Picker {
    private let random: PickerRandom

    /// - Parameter seed: Default: a random one; a fixed seed makes picks reproducible (tests).
    public init(seed: UInt64 = .random(in: 0...UInt64.max)) {
        random = PickerRandom(seed: seed)
    }

    public func pick(from endpoints: ReadyEndpoints) -> Int {
        let count = endpoints.count
        guard count > 1 else { return 0 }
        let first = random.below(count)
        // A second index different from the first.
        let second = (first + 1 + random.below(count - 1)) % count
        return endpoints[second].inFlight < endpoints[first].inFlight ? second : first
    }
}

/// The endpoint with the fewest requests in flight; ties take turns. O(endpoints) per pick,
/// so best for fleets of tens of addresses.
public final class LeastLoadedPicker: Picker {
    private let counter: Atomic<UInt>

    public init() {
        counter = Atomic(UInt.random(in: 0..<UInt(UInt32.max)))
    }

    public func pick(from endpoints: ReadyEndpoints) -> Int {
        let count = endpoints.count
        guard count > 0 else { return 0 }
        var minimum = Int.max
        var ties = 0
        for index in 0..<count {
            let load = endpoints[index].inFlight
            if load < minimum {
                minimum = load
                ties = 1
            } else if load == minimum {
                ties += 1
            }
        }
        // The ties take turns.
        var turn = Int(counter.wrappingAdd(1, ordering: .relaxed).oldValue % UInt(ties))
        for index in 0..<count where endpoints[index].inFlight == minimum {
            if turn == 0 { return index }
            turn -= 1
        }
        return 0
    }
}
