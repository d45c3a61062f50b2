import Synchronization

/// One endpoint (address) with its ready subconnections, as of one picker snapshot.
final class EndpointSnapshot: Sendable {
    let address: ResolvedAddress
    let subconnections: [Subconnection]
    /// The event loops (a bit each) whose requests asked for a connection to this address on
    /// their loop while this snapshot was current: each asks once.
    let loopsAsked = Atomic<UInt64>(0)

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

    /// The ready subconnection with the fewest requests in flight (on event loop `loop`, if
    /// given), skipping any that started draining since the snapshot was taken; `nil` if there
    /// is none (there).
    func leastLoadedSubconnection(on loop: ObjectIdentifier? = nil) -> Subconnection? {
        var best: Subconnection?
        var bestLoad = Int.max
        for subconnection in subconnections
        where (loop == nil || subconnection.eventLoopID == loop) && subconnection.shared.isAvailable.load(ordering: .acquiring) {
            let load = subconnection.shared.inFlight.load(ordering: .relaxed)
            // An idle one cannot be beaten (over HTTP/1.1 the common case, among many).
            if load == 0 { return subconnection }
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

extension ReadyEndpoints {
    /// An endpoint to build ``ReadyEndpoints`` from in a test of a custom ``Picker``.
    public struct TestEndpoint: Sendable {
        /// The endpoint's address.
        public var address: ResolvedAddress
        /// Requests in flight on it, as ``Endpoint/inFlight`` reports them. Default: 0.
        public var inFlight: Int
        /// Its ready subconnections (at least 1), as ``Endpoint/readySubconnections`` reports
        /// them; the requests in flight are on the first. Default: 1.
        public var readySubconnections: Int

        public init(address: ResolvedAddress, inFlight: Int = 0, readySubconnections: Int = 1) {
            self.address = address
            self.inFlight = inFlight
            self.readySubconnections = readySubconnections
        }
    }

    /// Endpoints as a pool would hand them to a ``Picker``, for testing one without a pool or a
    /// socket. Keep them sorted by address, as a pool does; a picker is never given an empty
    /// collection by a pool.
    ///
    /// ```swift
    /// let endpoints = ReadyEndpoints(testing: [
    ///     .init(address: ResolvedAddress(ip: "127.0.0.2", port: 8080), inFlight: 3),
    ///     .init(address: ResolvedAddress(ip: "127.0.0.3", port: 8080), inFlight: 0),
    /// ])
    /// #expect(LeastLoadedPicker().pick(from: endpoints) == 1)
    /// ```
    public init(testing endpoints: [TestEndpoint]) {
        var next: UInt64 = 0
        self.init(
            endpoints.map { endpoint in
                let subconnections = (0..<Swift.max(endpoint.readySubconnections, 1)).map { index in
                    next += 1
                    let subconnection = Subconnection(id: SubconnectionID(next), address: endpoint.address)
                    subconnection.shared.isAvailable.store(true, ordering: .releasing)
                    if index == 0 { subconnection.shared.inFlight.store(endpoint.inFlight, ordering: .relaxed) }
                    return subconnection
                }
                return EndpointSnapshot(address: endpoint.address, subconnections: subconnections)
            })
    }
}
