import Testing
@testable import LBPool

@Suite struct ActiveHealthTests {
    let a = ResolvedAddress(ip: "10.0.0.1", port: 80)
    let one = SubconnectionID(1)
    let two = SubconnectionID(2)

    @Test func thresholdsDecideEachConnectionAndTheAddressFollows() {
        var health = ActiveHealth(healthyThreshold: 2, unhealthyThreshold: 2)
        #expect(health.state(of: a) == .unknown)
        #expect(health.probed(one, at: a, healthy: true) == nil, "one success is below the threshold")
        #expect(health.probed(one, at: a, healthy: true) == .healthy)
        #expect(health.probed(two, at: a, healthy: false) == nil)
        #expect(health.probed(two, at: a, healthy: false) == .degraded)
        #expect(health.probed(one, at: a, healthy: false) == nil)
        #expect(health.probed(one, at: a, healthy: false) == .unhealthy)
        #expect(health.closed(one, at: a) == nil, "two alone is still unhealthy")
        #expect(health.closed(two, at: a) == .unknown)
    }

    @Test func aSuccessResetsTheFailureCount() {
        var health = ActiveHealth(healthyThreshold: 1, unhealthyThreshold: 2)
        _ = health.probed(one, at: a, healthy: true)
        #expect(health.probed(one, at: a, healthy: false) == nil)
        #expect(health.probed(one, at: a, healthy: true) == nil)
        #expect(health.probed(one, at: a, healthy: false) == nil)
        #expect(health.state(of: a) == .healthy)
    }
}
