import Testing
@testable import LBPool

@Suite struct EventBroadcasterTests {
    @Test func subscribersGetEventsAndEndWithThePool() async {
        let broadcaster = EventBroadcaster()
        let first = broadcaster.subscribe()
        let event = PoolEvent(kind: .addressAdded, address: ResolvedAddress(ip: "10.0.0.1", port: 80), subconnection: nil)
        broadcaster.emit(event)
        broadcaster.finish()
        var received: [PoolEvent] = []
        for await event in first { received.append(event) }
        #expect(received == [event])
        // Subscribing after the pool stopped ends at once instead of waiting forever.
        var late = 0
        for await _ in broadcaster.subscribe() { late += 1 }
        #expect(late == 0)
    }
}
