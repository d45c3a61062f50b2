import Testing
@testable import LBPool

@Suite struct OutlierEjectionTests {
    let a = ResolvedAddress(ip: "10.0.0.1", port: 80)
    let b = ResolvedAddress(ip: "10.0.0.2", port: 80)

    func machine(base: Int = 10, max: Int = 300, share: Double = 0.5) -> OutlierEjection {
        var settings = LBPool.Configuration.OutlierDetection()
        settings.baseEjectionTime = .seconds(base)
        settings.maxEjectionTime = .seconds(max)
        settings.minAvailableShare = share
        return OutlierEjection(settings: .init(settings))
    }

    @Test func ejectionProbeAndRecovery() {
        var ejection = machine()
        #expect(ejection.failuresReached(a, addresses: 4) == [.eject(a, for: .seconds(10))])
        #expect(ejection.health(of: a) == .ejected)
        #expect(ejection.failuresReached(a, addresses: 4).isEmpty, "already ejected")
        #expect(ejection.ejectionEnded(a) == [.probe(a)])
        #expect(ejection.succeeded(a) == [.recovered(a)])
        #expect(ejection.health(of: a) == .healthy)
        #expect(ejection.succeeded(a).isEmpty)
    }

    @Test func repeatOffencesDoubleTheEjectionUpToTheMaximum() {
        var ejection = machine(base: 10, max: 35)
        #expect(ejection.failuresReached(a, addresses: 4) == [.eject(a, for: .seconds(10))])
        _ = ejection.ejectionEnded(a)
        #expect(ejection.failuresReached(a, addresses: 4) == [.eject(a, for: .seconds(20))], "a failed probe re-ejects")
        _ = ejection.ejectionEnded(a)
        #expect(ejection.failuresReached(a, addresses: 4) == [.eject(a, for: .seconds(35))])
    }

    @Test func neverEjectsBelowTheAvailableShare() {
        var ejection = machine(share: 0.5)
        #expect(!ejection.failuresReached(a, addresses: 3).isEmpty, "2 of 3 stay")
        #expect(ejection.failuresReached(b, addresses: 3).isEmpty, "1 of 3 would stay")
        #expect(ejection.health(of: b) == .healthy)
        var single = machine(share: 0.5)
        #expect(single.failuresReached(a, addresses: 1).isEmpty, "the only address is never ejected")
    }

    @Test func removedAddressesAreForgotten() {
        var ejection = machine()
        _ = ejection.failuresReached(a, addresses: 4)
        ejection.removed(a)
        #expect(ejection.health(of: a) == .healthy)
        #expect(ejection.ejectionEnded(a).isEmpty)
    }
}
