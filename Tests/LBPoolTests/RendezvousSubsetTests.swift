import Testing
@testable import LBPool

/// Rendezvous subsetting: the weight function, the spread over many clients, stability when
/// addresses come and go, and stand-ins for addresses that are out.
@Suite struct RendezvousSubsetTests {
    /// 100 addresses on one port, like the pods of one service.
    static let fleet = (0..<100).map { ResolvedAddress(ip: "127.0.\($0 / 250).\($0 % 250 + 1)", port: 8080) }
    static let keys = (0..<1000).map { "client-\($0)" }

    func subset(_ key: String, size: Int = 5, of addresses: [ResolvedAddress] = fleet) -> Set<ResolvedAddress> {
        let rendezvous = RendezvousSubset(size: size, key: key)
        return Set(rendezvous.members(of: rendezvous.ranked(addresses), out: { _ in false }))
    }

    @Test func theWeightIsTheDocumentedHashSoEveryClientAndVersionAgrees() {
        // FNV-1a 64 over the key, 0xFF, the IP's text and the port (big-endian), then
        // MurmurHash3's fmix64; the expected values were computed apart, in Python.
        let rendezvous = RendezvousSubset(size: 1, key: "pod-a")
        #expect(rendezvous.weight(of: ResolvedAddress(ip: "127.0.0.2", port: 8080)) == 0xC28E_D1CA_EE50_8484)
        #expect(rendezvous.weight(of: ResolvedAddress(ip: "::1", port: 443)) == 0x3AAC_A8D3_7814_36C6)
    }

    @Test func overAThousandClientsEachOfAHundredAddressesIsInAboutAFiftiethOfTheSubsets() {
        // Size 5 of 100: 50 subsets per address expected. With these keys the spread is 33…63;
        // the guarantee stated in the documentation is 50 ± 40 %.
        var count: [ResolvedAddress: Int] = [:]
        for key in Self.keys {
            let members = subset(key)
            #expect(members.count == 5)
            for address in members { count[address, default: 0] += 1 }
        }
        #expect(count.count == 100, "every address is in some subset")
        let counts = count.values
        #expect(counts.reduce(0, +) == 5000)
        #expect(counts.allSatisfy { (30...70).contains($0) }, "from \(counts.min() ?? 0) to \(counts.max() ?? 0)")
    }

    @Test func anAddressLeavingChangesOnlyTheSubsetsThatHeldItEachByTheNextRanked() {
        let leaving = Self.fleet[37]
        let remaining = Self.fleet.filter { $0 != leaving }
        var held = 0
        for key in Self.keys {
            let before = subset(key)
            let after = subset(key, of: remaining)
            if before.contains(leaving) {
                held += 1
                let rendezvous = RendezvousSubset(size: 5, key: key)
                let nextRanked = rendezvous.ranked(Self.fleet)[5]
                #expect(after == before.subtracting([leaving]).union([nextRanked]), "\(key)")
            } else {
                #expect(after == before, "\(key)")
            }
        }
        #expect(held > 0)
    }

    @Test func anAddressJoiningChangesASubsetByAtMostOneAddress() {
        let joining = ResolvedAddress(ip: "127.0.9.9", port: 8080)
        var took = 0
        for key in Self.keys {
            let before = subset(key)
            let after = subset(key, of: Self.fleet + [joining])
            #expect(after.count == 5)
            if after.contains(joining) {
                took += 1
                #expect(before.subtracting(after).count == 1, "\(key)")
            } else {
                #expect(after == before, "\(key)")
            }
        }
        #expect((20...80).contains(took), "about 5/101 of 1000 subsets take the new address: \(took)")
    }

    @Test func anAddressThatIsOutKeepsItsPlaceAndTheNextRankedStandsInUntilItIsBack() {
        let rendezvous = RendezvousSubset(size: 3, key: "pod-a")
        let ranking = rendezvous.ranked(Array(Self.fleet.prefix(10)))
        #expect(Array(rendezvous.members(of: ranking, out: { _ in false })) == Array(ranking.prefix(3)))
        // The second-ranked one is ejected: it stays (to be probed), the fourth stands in.
        #expect(Array(rendezvous.members(of: ranking, out: { $0 == ranking[1] })) == Array(ranking.prefix(4)))
        // The stand-in is out too: the fifth joins as well.
        #expect(Array(rendezvous.members(of: ranking, out: { $0 == ranking[1] || $0 == ranking[3] })) == Array(ranking.prefix(5)))
        // Everything out: the whole ranking, nothing better to take.
        #expect(rendezvous.members(of: ranking, out: { _ in true }).count == 10)
    }

    @Test func aSubsetAsLargeAsTheFleetIsTheFleet() {
        #expect(subset("pod-a", size: 5, of: Array(Self.fleet.prefix(3))) == Set(Self.fleet.prefix(3)))
        #expect(subset("pod-a", size: 100) == Set(Self.fleet))
    }

    @Test func differentKeysGetDifferentSubsetsAndTheSameKeyTheSameOne() {
        #expect(subset("pod-a") == subset("pod-a"))
        #expect(subset("pod-a") != subset("pod-b"))
        // The ranking does not depend on the order DNS answered in.
        #expect(subset("pod-a", of: Self.fleet.reversed()) == subset("pod-a"))
    }

    @Test func theDrawnKeyIsTheHostNameAndASaltOfItsOwn() {
        let first = SubsetKey.drawn(), second = SubsetKey.drawn()
        #expect(first.hasPrefix(SubsetKey.hostName() + "/"))
        #expect(first.split(separator: "/").last?.count == 16)
        #expect(first != second)
    }
}
