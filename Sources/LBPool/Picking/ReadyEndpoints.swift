/// One endpoint (address) with its ready subconnections, as of one picker snapshot.
final class EndpointSnapshot: Sendable {
    let address: ResolvedAddress
    let subconnections: [Subconnection]

    init(address: ResolvedAddress, subconnections: [Subconnection]) {
        self.address = address
        self.subconnections = subconnections
    }

    /// Requests in flight over all of the endpoint's ready subconnections.
    var inFlight: Int {
        var total = 0
        for subconnection in subconnections {
            total &+= subconnection.shared.inFlight.load(ordering: .relaxed)
        }
        return total
    }

    /// The ready subconnection with the fewest requests in flight, skipping any that started
    /// draining since the snapshot was taken.
    func leastLoadedSubconnection() -> Subconnection? {
        var best: Subconnection?
        var bestLoad = Int.max
        for subconnection in subconnections where subconnection.shared.isAvailable.load(ordering: .acquiring) {
            let load = subconnection.shared.inFlight.load(ordering: .relaxed)
            if load < bestLoad {
                best = subconnection
                bestLoad = load
            }
        }
        return best
    }
}

/// The endpoints a ``Picker`` chooses from: every endpoint with at least one ready
/// subconnection, in a stable order (sorted by address). Never empty when passed to a picker.
public struct ReadyEndpoints: Sendable, RandomAccessCollection {
    let storage: [EndpointSnapshot]

    init(_ storage: [EndpointSnapshot]) {
        self.storage = storage
    }

    public var startIndex: Int { storage.startIndex }
    public var endIndex: Int { storage.endIndex }

    public subscript(position: Int) -> Endpoint {
        Endpoint(snapshot: storage[position])
    }

    /// What a picker may read of an endpoint. Reading it takes no lock.
    public struct Endpoint: Sendable {
        let snapshot: EndpointSnapshot

        /// The endpoint's address.
        public var address: ResolvedAddress { snapshot.address }
        /// Requests in flight on the endpoint now.
        public var inFlight: Int { snapshot.inFlight }
        /// How many ready subconnections the endpoint has.
        public var readySubconnections: Int { snapshot.subconnections.count }
    }
}
