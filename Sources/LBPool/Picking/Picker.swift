import Synchronization

/// Chooses the endpoint for each request.
///
/// One picker serves the pool for its whole life and is called concurrently from every request,
/// with the endpoints ready at that moment; the set may differ from one call to the next. A pick
/// should be O(1), allocate nothing and take no contended lock. The chosen endpoint then sends
/// the request on its least-loaded ready subconnection.
public protocol Picker: Sendable {
    /// Returns the index in `endpoints` of the endpoint to use. The pool never calls it with no
    /// endpoint; the pickers of this library answer 0 then.
    func pick(from endpoints: ReadyEndpoints) -> Int
}

/// Round robin over the ready endpoints, starting at a random position so that a fleet of
/// clients does not start on the same server. With a stable set of endpoints, N × k sequential
/// picks give each endpoint exactly k.
public final class RoundRobinPicker: Picker {
    private let counter: Atomic<UInt>

    public init() {
        counter = Atomic(UInt.random(in: 0..<UInt(UInt32.max)))
    }

    /// Starts at a chosen position; for tests and reproducible runs.
    public init(start: UInt) {
        counter = Atomic(start)
    }

    public func pick(from endpoints: ReadyEndpoints) -> Int {
        guard !endpoints.isEmpty else { return 0 }
        let ticket = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        return Int(ticket % UInt(endpoints.count))
    }
}
