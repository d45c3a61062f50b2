import Testing
@testable import LBPool

@Suite struct DNSRefreshStateTests {
    let t0 = ContinuousClock.now

    func state(min: Int = 5, max: Int = 300, early: Int = 1, policy: DNSResolver.EmptyAnswerPolicy = .keepLastAddressesForOneTTL) -> DNSRefreshState {
        DNSRefreshState(
            settings: .init(
                minRefreshInterval: .seconds(min), maxRefreshInterval: .seconds(max),
                minEarlyRefreshInterval: .seconds(early), emptyAnswerPolicy: policy))
    }

    func records(_ entries: [(String, Int)]) -> [(address: ResolvedAddress, ttlSeconds: Int)] {
        entries.map { (ResolvedAddress(ip: $0.0, port: 80), $0.1) }
    }

    @Test func ttlIsClampedToTheRefreshBounds() {
        let s = state(min: 5, max: 300)
        #expect(s.refreshInterval(forTTLSeconds: 0) == .seconds(5))
        #expect(s.refreshInterval(forTTLSeconds: 3) == .seconds(5))
        #expect(s.refreshInterval(forTTLSeconds: 30) == .seconds(30))
        #expect(s.refreshInterval(forTTLSeconds: 3600) == .seconds(300))
        #expect(s.refreshInterval(forTTLSeconds: -1) == .seconds(5))
    }

    @Test func refreshIsScheduledAtTheSmallestTTL() {
        var s = state()
        let update = s.lookupSucceeded(records([("10.0.0.1", 60), ("10.0.0.2", 20), ("10.0.0.1", 60)]), at: t0)
        #expect(update.addresses.map(\.ip) == ["10.0.0.1", "10.0.0.2"])
        #expect(update.error == nil)
        #expect(s.nextRefreshAt == t0 + .seconds(20))
    }

    @Test func earlyRefreshIsRateLimited() {
        var s = state(early: 1)
        #expect(s.earliestEarlyRefresh(requestedAt: t0) == t0)
        _ = s.lookupSucceeded(records([("10.0.0.1", 30)]), at: t0)
        #expect(s.earliestEarlyRefresh(requestedAt: t0 + .milliseconds(200)) == t0 + .seconds(1))
        #expect(s.earliestEarlyRefresh(requestedAt: t0 + .seconds(3)) == t0 + .seconds(3))
    }

    @Test func transportFailureKeepsTheLastGoodSet() {
        var s = state()
        _ = s.lookupSucceeded(records([("10.0.0.1", 30)]), at: t0)
        let error = ResolverError(kind: .lookupFailed, name: "api", reason: "timeout")
        let update = s.lookupFailed(error, at: t0 + .seconds(30))
        #expect(update.addresses.map(\.ip) == ["10.0.0.1"])
        #expect(update.error == error)
        #expect(s.nextRefreshAt == t0 + .seconds(35))
        // Much later, still the last good set: a transport failure never empties it.
        let later = s.lookupFailed(error, at: t0 + .seconds(3000))
        #expect(later.addresses.map(\.ip) == ["10.0.0.1"])
    }

    @Test func failureBeforeAnySuccessYieldsNoAddresses() {
        var s = state()
        let update = s.lookupFailed(ResolverError(kind: .lookupFailed, name: "api", reason: "refused"), at: t0)
        #expect(update.addresses.isEmpty)
        #expect(update.error?.kind == .lookupFailed)
    }

    @Test func emptyAnswerKeepsTheLastSetForOneTTLThenDropsIt() {
        var s = state()
        _ = s.lookupSucceeded(records([("10.0.0.1", 30)]), at: t0)
        let nx = ResolverError(kind: .noRecords, name: "api", reason: "NXDOMAIN")
        let within = s.lookupFailed(nx, at: t0 + .seconds(10))
        #expect(within.addresses.map(\.ip) == ["10.0.0.1"])
        #expect(s.nextRefreshAt == t0 + .seconds(15))
        let after = s.lookupFailed(nx, at: t0 + .seconds(31))
        #expect(after.addresses.isEmpty)
        #expect(after.error == nx)
    }

    @Test func emptyAnswerDropsAtOnceWithDropPolicy() {
        var s = state(policy: .dropAddresses)
        _ = s.lookupSucceeded(records([("10.0.0.1", 30)]), at: t0)
        let update = s.lookupFailed(ResolverError(kind: .noRecords, name: "api", reason: "NODATA"), at: t0 + .seconds(1))
        #expect(update.addresses.isEmpty)
    }

    @Test func answersAreCombinedAcrossRecordTypes() {
        let both = DNSRefreshLoop.combine([.records([("10.0.0.1", 5)]), .failure(status: 1, message: "no data")], name: "n", port: 80)
        #expect((try? both.get())?.map(\.address.ip) == ["10.0.0.1"])
        #expect((try? both.get())?.first?.address.ttl == .seconds(5))
        let failed = DNSRefreshLoop.combine([.failure(status: 12, message: "timeout"), .failure(status: 4, message: "nx")], name: "n", port: 80)
        #expect(throws: ResolverError(kind: .lookupFailed, name: "n", reason: "timeout")) { try failed.get() }
        let empty = DNSRefreshLoop.combine([.failure(status: 4, message: "nx"), .failure(status: 1, message: "nodata")], name: "n", port: 80)
        #expect(throws: ResolverError(kind: .noRecords, name: "n", reason: "nx")) { try empty.get() }
    }
}
