#if BenchmarkHooks
/// Entry points for the nested `Benchmarks` package, for the two internals it measures that the
/// public API does not reach: a request's pick with its stream reservation, and the balancer's
/// state machine (pickers and ``ReadyEndpoints`` it builds with public API). Built only with
/// the package trait `BenchmarkHooks`, which only that package enables: no user's build has
/// them. Not API: anything here may change in any release.
@_spi(Benchmarks)
public enum BenchmarkHooks {
    /// The pick a request makes before it opens a stream: read the current snapshot, let the
    /// picker choose, reserve a stream on the endpoint's least-loaded connection (here released
    /// at once).
    public final class PickPath: Sendable {
        private let state = PickerState()
        private let picker: any Picker

        public init(endpoints count: Int, picker: any Picker) {
            self.picker = picker
            let addresses = (0..<count).map { ResolvedAddress(ip: "127.1.\($0 / 250).\($0 % 250 + 1)", port: 8080) }
            state.update { $0.endpoints = ReadyEndpoints(testing: addresses.map { .init(address: $0) }) }
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
    /// which connections to dial and drain, what to report.
    public struct AddressChange: Sendable {
        private var machine: BalancerStateMachine

        public init(minConnections: Int) {
            machine = BalancerStateMachine(settings: .init(minConnections: minConnections), seed: 1)
        }

        /// Applies `addresses` as the new resolved set; returns how many actions it asked for.
        public mutating func resolve(_ addresses: [ResolvedAddress]) -> Int {
            machine.resolved(addresses).count
        }
    }
}
#endif
