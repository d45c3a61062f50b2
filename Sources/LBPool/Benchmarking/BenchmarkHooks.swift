#if BenchmarkHooks
/// Entry points for the nested `Benchmarks` package, which measures internals that the public
/// API does not reach. Built only with the package trait `BenchmarkHooks`, which only that
/// package enables: no user's build has them. Not API: anything here may change in any release.
@_spi(Benchmarks)
public enum BenchmarkHooks {
    /// `count` distinct addresses on one port, as a resolver would report them.
    public static func addresses(count: Int, port: Int = 8080) -> [ResolvedAddress] {
        (0..<count).map { ResolvedAddress(ip: "127.1.\($0 / 250).\($0 % 250 + 1)", port: port) }
    }

    /// A picker snapshot of `count` ready endpoints with one available subconnection each.
    public static func readyEndpoints(count: Int) -> ReadyEndpoints {
        ReadyEndpoints(
            addresses(count: count).enumerated().map { index, address in
                let subconnection = Subconnection(id: SubconnectionID(UInt64(index)), address: address)
                subconnection.shared.isAvailable.store(true, ordering: .releasing)
                return EndpointSnapshot(address: address, subconnections: [subconnection])
            })
    }

    /// The pick a request makes before it opens a stream: read the current snapshot, let the
    /// picker choose, reserve a stream on the endpoint's least-loaded connection (here released
    /// at once).
    public final class PickPath: Sendable {
        private let state = PickerState()
        private let picker: any Picker

        public init(endpoints count: Int, picker: any Picker) {
            self.picker = picker
            let endpoints = BenchmarkHooks.readyEndpoints(count: count)
            state.update { $0.endpoints = endpoints }
        }

        /// One pick, reservation and release; returns the chosen endpoint's index.
        public func pickReserveRelease() -> Int {
            let endpoints = state.forPick().endpoints
            let index = picker.pick(from: endpoints)
            if let subconnection = endpoints.storage[index].leastLoadedSubconnection(), subconnection.shared.tryReserve() {
                _ = subconnection.shared.release()
            }
            return index
        }
    }

    /// The balancer's state machine taking in a resolution: which endpoints to add and remove,
    /// which connections to dial and drain.
    public struct AddressChange: Sendable {
        private var machine: BalancerStateMachine

        public init(minConnections: Int) {
            machine = BalancerStateMachine(minConnections: minConnections)
        }

        /// Applies `addresses` as the new resolved set; returns how many actions it asked for.
        public mutating func resolve(_ addresses: [ResolvedAddress]) -> Int {
            machine.addressesResolved(addresses).count
        }
    }
}
#endif
