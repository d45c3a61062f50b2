import Foundation
import Testing
@testable import LBPool

/// The configuration reference is kept in the code (the DocC comments, with each default) and in
/// two tables, the README's and the DocC article's: every stored setting must be in both.
@Suite struct ConfigurationReferenceTests {
    /// The repository's root, from this file's path.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// The README's "Configuration reference" section.
    static func readmeTable() throws -> String {
        let readme = try text("README.md")
        let start = try #require(readme.range(of: "## Configuration reference"))
        let end = readme.range(of: "\n## ", range: start.upperBound..<readme.endIndex)?.lowerBound ?? readme.endIndex
        return String(readme[start.lowerBound..<end])
    }

    static func settings(of value: Any) -> [String] {
        Mirror(reflecting: value).children.compactMap(\.label)
    }

    /// Settings whose fields are listed one by one, and how the DocC article names a field.
    static let nested: [String: (fields: [String], docc: String)] = [
        "http2Limits": (settings(of: LBPool.Configuration.HTTP2Limits()), "LBPool/Configuration/HTTP2Limits"),
        "dns": (settings(of: DNSResolver.Configuration()), "DNSResolver/Configuration"),
    ]

    @Test func everySettingIsInTheREADMEAndTheDocCReference() throws {
        let readme = try Self.readmeTable()
        let docc = try Self.text("Sources/LBPool/LBPool.docc/ConfigurationReference.md")
        let settings = Self.settings(of: LBPool.Configuration())
        #expect(settings.count > 15, "\(settings)")
        for setting in settings {
            if let (fields, prefix) = Self.nested[setting] {
                for field in fields {
                    #expect(readme.contains("`\(setting).\(field)`") || readme.contains("/ `\(field)`"), "README lacks \(setting).\(field)")
                    #expect(docc.contains("``\(prefix)/\(field)``"), "ConfigurationReference.md lacks \(setting).\(field)")
                }
            } else {
                #expect(readme.contains("| `\(setting)`"), "README lacks \(setting)")
                #expect(docc.contains("``LBPool/Configuration/\(setting)``"), "ConfigurationReference.md lacks \(setting)")
            }
        }
    }
}
