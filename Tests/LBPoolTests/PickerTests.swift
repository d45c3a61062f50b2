import Testing
@testable import LBPool

@Suite struct PickerTests {
    func endpoints(_ count: Int) -> ReadyEndpoints {
        ReadyEndpoints(
            (0..<count).map { index in
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

@Suite struct LoadAwarePickerTests {
    /// Endpoints whose in-flight counts are `loads`.
    func endpoints(_ loads: [Int]) -> ReadyEndpoints {
        ReadyEndpoints(
            loads.enumerated().map { index, load in
                let address = ResolvedAddress(ip: "10.0.0.\(index)", port: 80)
                let subconnection = Subconnection(id: SubconnectionID(UInt64(index)), address: address)
                subconnection.shared.inFlight.store(load, ordering: .relaxed)
                return EndpointSnapshot(address: address, subconnections: [subconnection])
            })
    }

    func counts(_ picker: any Picker, _ set: ReadyEndpoints, picks: Int) -> [Int] {
        var counts = Array(repeating: 0, count: set.count)
        for _ in 0..<picks { counts[picker.pick(from: set)] += 1 }
        return counts
    }

    @Test(arguments: [
        LBPool.PickerChoice.roundRobin, .random, .powerOfTwoChoices, .leastLoaded,
    ])
    func everyPickerHandlesZeroOneAndChangingSets(choice: LBPool.PickerChoice) {
        let picker = choice.make()
        #expect(picker.pick(from: endpoints([])) == 0)
        #expect(picker.pick(from: endpoints([5])) == 0)
        for size in [7, 2, 5, 1, 3] {
            #expect((0..<size).contains(picker.pick(from: endpoints(Array(repeating: 0, count: size)))))
        }
    }

    @Test func randomSpreadsRoughlyEvenly() {
        let result = counts(RandomPicker(seed: 42), endpoints([0, 0, 0, 0]), picks: 40_000)
        #expect(result.allSatisfy { (9_000...11_000).contains($0) }, "\(result)")
    }

    @Test func powerOfTwoChoicesAvoidsTheLoadedEndpoint() {
        // One endpoint with 10 requests in flight, three idle ones.
        let result = counts(PowerOfTwoChoicesPicker(seed: 7), endpoints([10, 0, 0, 0]), picks: 30_000)
        #expect(result[0] == 0, "the loaded endpoint always loses its comparison: \(result)")
        #expect(result[1...].allSatisfy { (9_000...11_000).contains($0) }, "\(result)")
    }

    @Test func powerOfTwoChoicesIsUniformWhenLoadsAreEqual() {
        let result = counts(PowerOfTwoChoicesPicker(seed: 9), endpoints([1, 1, 1]), picks: 30_000)
        #expect(result.allSatisfy { (9_000...11_000).contains($0) }, "\(result)")
    }

    @Test func leastLoadedPicksTheMinimumAndRotatesTies() {
        let picker = LeastLoadedPicker()
        #expect(counts(picker, endpoints([3, 1, 2]), picks: 100) == [0, 100, 0])
        let ties = counts(picker, endpoints([0, 5, 0]), picks: 100)
        #expect(ties[1] == 0 && ties[0] == 50 && ties[2] == 50, "\(ties)")
    }
}
