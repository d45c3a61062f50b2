import HTTPTypes
import Testing
@testable import LBPool

/// How a tracer's propagation fields go into a request.
@Suite struct HTTPFieldsInjectorTests {
    @Test func aPropagationFieldReplacesAnyOfTheSameNameAndStaysOutOfTheHPACKTable() throws {
        var fields = HTTPFields()
        fields[try #require(HTTPField.Name("traceparent"))] = "stale"
        HTTPFieldsInjector().inject("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", forKey: "traceparent", into: &fields)
        let sent = fields[fields: try #require(HTTPField.Name("traceparent"))]
        #expect(sent.map(\.value) == ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"])
        #expect(sent.allSatisfy { $0.indexingStrategy == .avoid }, "a value that changes with every request")
    }

    @Test func aKeyThatIsNoFieldNameIsLeftOut() {
        var fields = HTTPFields()
        HTTPFieldsInjector().inject("value", forKey: "not a name", into: &fields)
        #expect(fields.isEmpty)
    }
}
