/// Rendezvous (highest-random-weight) subsetting: which of the resolved addresses this client
/// connects to. Pure: addresses and their health in, the subset out.
///
/// Every address gets a weight, a 64-bit hash of (client key, address); the addresses ranked by
/// weight, highest first, are the client's order of preference. The subset is the shortest
/// prefix of that ranking that holds `size` addresses in use; an address that is out (ejected,
/// or failing its health checks) inside the prefix stays in it, connected, so that it can come
/// back, and the next-ranked address stands in for it meanwhile:
///
/// ```
///  ranking  a  b  c  d  e  f  g …      size 3
///  subset   a  b  c                    all in use
///  subset   a  b✗ c  d                 b ejected: d stands in, b stays connected
///  subset   a  b  c                    b recovered: d leaves
/// ```
///
/// Since the weight of an address does not depend on the other addresses, an address leaving
/// DNS changes only the subsets that held it (each gains the next-ranked address), and an
/// address joining changes a subset by at most one address (it enters, the last one leaves).
/// Over many keys, each address is in about `size / addresses` of the subsets.
struct RendezvousSubset: Sendable {
    let size: Int
    let key: String
    /// The hash state after the key's bytes, shared by every address's weight.
    private let keyState: UInt64

    init(size: Int, key: String) {
        self.size = size
        self.key = key
        var state = Self.offsetBasis
        for byte in key.utf8 { state = (state ^ UInt64(byte)) &* Self.prime }
        // A byte no UTF-8 text has, between key and address: ("ab", "c") and ("a", "bc") differ.
        self.keyState = (state ^ 0xFF) &* Self.prime
    }

    /// The weight of `address` for this key: FNV-1a over key and address, then a 64-bit
    /// finaliser (MurmurHash3's), so that every bit depends on every input bit. The same in every
    /// process and on every platform: clients of one service agree on nothing but the function.
    func weight(of address: ResolvedAddress) -> UInt64 {
        var state = keyState
        for byte in address.ip.utf8 { state = (state ^ UInt64(byte)) &* Self.prime }
        var port = UInt16(truncatingIfNeeded: address.port)
        for _ in 0..<2 {
            state = (state ^ UInt64(port >> 8)) &* Self.prime
            port <<= 8
        }
        state ^= state >> 33
        state &*= 0xFF51_AFD7_ED55_8CCD
        state ^= state >> 33
        state &*= 0xC4CE_B9FE_1A85_EC53
        state ^= state >> 33
        return state
    }

    /// `addresses` best first: highest weight, ties (a 2^-64 chance) in address order.
    func ranked(_ addresses: [ResolvedAddress]) -> [ResolvedAddress] {
        addresses
            .map { (address: $0, weight: weight(of: $0)) }
            .sorted { $0.weight != $1.weight ? $0.weight > $1.weight : ($0.address.ip, $0.address.port) < ($1.address.ip, $1.address.port) }
            .map(\.address)
    }

    /// The subset of a ranking: its shortest prefix with `size` addresses that are not `out`
    /// (the whole ranking if it has fewer).
    func members(of ranking: [ResolvedAddress], out: (ResolvedAddress) -> Bool) -> ArraySlice<ResolvedAddress> {
        var inUse = 0
        for (position, address) in ranking.enumerated() where !out(address) {
            inUse += 1
            if inUse == size { return ranking[...position] }
        }
        return ranking[...]
    }

    private static let offsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325
    private static let prime: UInt64 = 0x0000_0100_0000_01B3
}
