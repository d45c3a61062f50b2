import LBPool
import Testing

/// `ReadyEndpoints(testing:)`, as a user testing a custom picker reaches it: through the public
/// API only (no `@testable`).
@Suite struct ReadyEndpointsTests {
    /// A user's picker: the first endpoint with the fewest requests per ready connection.
    struct FewestPerConnectionPicker: Picker {
        func pick(from endpoints: ReadyEndpoints) -> Int {
            endpoints.indices.min { endpoints[$0].inFlight * endpoints[$1].readySubconnections < endpoints[$1].inFlight * endpoints[$0].readySubconnections }
                ?? 0
        }
    }

    let a = ResolvedAddress(ip: "127.0.0.2", port: 8080)
    let b = ResolvedAddress(ip: "127.0.0.3", port: 8080)
    let c = ResolvedAddress(ip: "127.0.0.4", port: 8080)

    @Test func theTestingEndpointsReportWhatTheyWereGiven() {
        let endpoints = ReadyEndpoints(testing: [
            .init(address: a, inFlight: 3),
            .init(address: b),
            .init(address: c, inFlight: 7, readySubconnections: 4),
        ])
        #expect(endpoints.map(\.address) == [a, b, c])
        #expect(endpoints.map(\.inFlight) == [3, 0, 7])
        #expect(endpoints.map(\.readySubconnections) == [1, 1, 4])
        #expect(ReadyEndpoints(testing: [.init(address: a, readySubconnections: 0)]).first?.readySubconnections == 1)
    }

    @Test func aCustomPickerIsTestedWithoutAPool() {
        let picker = FewestPerConnectionPicker()
        // 3 per connection, 2 per connection, 1.75 per connection.
        let endpoints = ReadyEndpoints(testing: [
            .init(address: a, inFlight: 3),
            .init(address: b, inFlight: 4, readySubconnections: 2),
            .init(address: c, inFlight: 7, readySubconnections: 4),
        ])
        #expect(picker.pick(from: endpoints) == 2)
        // The example of the documentation, with a picker of the library.
        let documented = ReadyEndpoints(testing: [.init(address: a, inFlight: 3), .init(address: b, inFlight: 0)])
        #expect(LeastLoadedPicker().pick(from: documented) == 1)
    }
}
