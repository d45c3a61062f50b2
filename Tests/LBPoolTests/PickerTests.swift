import Testing
@testable import LBPool

@Suite struct PickerTests {
    func endpoints(_ count: Int) -> ReadyEndpoints {
        ReadyEndpoints((0..<count).map { index in
            EndpointSnapshot(address: ResolvedAddress(ip: "10.0.0.\(index)", port: 80), subconnections: [])
        })
    }

    @Test func roundRobinVisitsEveryEndpointInOrder() {
        let picker = RoundRobinPicker(start: 1)
        let set = endpoints(3)
        #expect((0..<7).map { _ in picker.pick(from: set) } == [1, 2, 0, 1, 2, 0, 1])
    }

    @Test func roundRobinSplitsEvenly() {
        let picker = RoundRobinPicker()
        let set = endpoints(3)
        var counts = [0, 0, 0]
        for _ in 0..<3000 { counts[picker.pick(from: set)] += 1 }
        #expect(counts == [1000, 1000, 1000])
    }

    @Test func roundRobinStaysInRangeWhenTheSetShrinks() {
        let picker = RoundRobinPicker(start: UInt.max - 1)
        for size in [5, 1, 3, 2] {
            let index = picker.pick(from: endpoints(size))
            #expect((0..<size).contains(index))
        }
    }

    @Test func randomStartsDiffer() {
        let starts = Set((0..<20).map { _ in RoundRobinPicker().pick(from: endpoints(1000)) })
        #expect(starts.count > 1)
    }
}
