import Testing
@testable import LBPool

@Suite struct RefreshRequestsTests {
    @Test func requestsBeforeWaitAreCoalescedIntoOne() async {
        let requests = RefreshRequests()
        requests.request()
        requests.request()
        #expect(requests.isPending)
        await requests.wait()
        #expect(!requests.isPending)
    }

    @Test func requestWakesAWaiterAndLeavesNothingPending() async {
        let requests = RefreshRequests()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await requests.wait() }
            requests.request()
            await group.waitForAll()
        }
        // Whether the waiter was parked or found the request pending, the request is consumed.
        #expect(!requests.isPending)
    }

    @Test func cancellationEndsAWaitWithoutConsuming() async {
        let requests = RefreshRequests()
        let waiter = Task { await requests.wait() }
        waiter.cancel()
        await waiter.value
        requests.request()
        #expect(requests.isPending)
    }
}
