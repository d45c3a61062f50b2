// Writes the seed inputs of every fuzz target (FuzzSeeds) into <folder>/<target>/<name>, for
// `make fuzz-seeds`. The files are what the committed corpus started from.
import Foundation
import LBPoolFuzzEntries

let arguments = CommandLine.arguments
guard arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: FuzzSeedWriter <folder>\n".utf8))
    exit(2)
}
let root = URL(fileURLWithPath: arguments[1])
for target in FuzzTarget.allCases {
    let folder = root.appendingPathComponent(target.folderName)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let seeds = FuzzSeeds.seeds(for: target)
    for seed in seeds {
        try Data(seed.bytes).write(to: folder.appendingPathComponent(seed.name))
    }
    print("\(target.folderName): \(seeds.count) seeds in \(folder.path)")
}
