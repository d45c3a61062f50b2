import Foundation
import LBPoolFuzzEntries
import Testing

/// Replays the committed fuzz inputs, `Fuzz/Corpus/<target>/` and `Fuzz/Crashers/<target>/`,
/// and the generated seeds through the same entry function the libFuzzer executables call
/// (``FuzzTarget/run(_:)``), without libFuzzer: `make test` keeps passing what `make fuzz` once
/// passed, and keeps failing on a crasher until it is fixed. A missing or empty corpus folder
/// fails, so that a moved folder cannot pass silently.
@Suite struct FuzzCorpusReplayTests {
    static let fuzzFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    /// The input files in `Fuzz/<kind>/<target>/` (all but dot files and READMEs), sorted;
    /// `nil` if the folder is missing.
    func inputs(_ kind: String, _ target: FuzzTarget) -> [URL]? {
        let folder = Self.fuzzFolder.appendingPathComponent(kind).appendingPathComponent(target.folderName)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return nil }
        return names.filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted().map { folder.appendingPathComponent($0) }
    }

    func replay(_ files: [URL], _ target: FuzzTarget) throws {
        for file in files {
            let bytes = try [UInt8](Data(contentsOf: file))
            do {
                try target.run(bytes)
            } catch {
                Issue.record("\(target.folderName)/\(file.lastPathComponent): \(error)")
            }
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func theCommittedCorpusReplays(_ target: FuzzTarget) throws {
        let files = try #require(inputs("Corpus", target), "no folder Fuzz/Corpus/\(target.folderName)")
        #expect(!files.isEmpty, "Fuzz/Corpus/\(target.folderName) has no inputs")
        try replay(files, target)
    }

    @Test(arguments: FuzzTarget.allCases)
    func everyCommittedCrasherReplays(_ target: FuzzTarget) throws {
        // The folder must be there (with its README) even while no crasher is known.
        let files = try #require(inputs("Crashers", target), "no folder Fuzz/Crashers/\(target.folderName)")
        try replay(files, target)
    }

    @Test(arguments: FuzzTarget.allCases)
    func theSeedsRun(_ target: FuzzTarget) {
        let seeds = FuzzSeeds.seeds(for: target)
        #expect(!seeds.isEmpty)
        for seed in seeds {
            do {
                try target.run(seed.bytes)
            } catch {
                Issue.record("seed \(target.folderName)/\(seed.name): \(error)")
            }
        }
    }
}
