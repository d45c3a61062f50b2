// Only in debug builds: `@testable import LBPool` needs the library compiled with testability,
// which SwiftPM does in debug alone. A release build of this (product-less) module is empty.
#if DEBUG

/// The fuzz targets, each with its one entry function. The libFuzzer executables
/// (`Fuzz/Targets/*`) call ``runOrTrap(_:_:)`` from `LLVMFuzzerTestOneInput`; the corpus replay
/// in `LBPoolTests` calls ``run(_:)`` on every committed input. Both run exactly this code.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// ``HTTP2FrameParser`` on arbitrary bytes, whole and cut into pieces.
    case frameParser = "FrameParser"
    /// ``HeaderBlockDecoder`` on a sequence of blocks, against NIOHPACK's decoder.
    case hpackDecoder = "HPACKDecoder"
    /// A whole client connection (``ConnectionHandler``) reading arbitrary server bytes.
    case connection = "Connection"

    /// The folder under `Fuzz/Corpus` and `Fuzz/Crashers` that holds this target's inputs.
    public var folderName: String { rawValue }

    /// Runs one input. A crash or trap in the code under test ends the process; what the
    /// target's own checks find (an outcome that is wrong without crashing) is thrown.
    public func run(_ input: UnsafeRawBufferPointer) throws(FuzzFinding) {
        switch self {
        case .frameParser: try FrameParserFuzzEntry.run(input)
        case .hpackDecoder: try HPACKDecoderFuzzEntry.run(input)
        case .connection: try ConnectionFuzzEntry.run(input)
        }
    }

    /// Runs one input held in an array (the corpus replay's way in).
    public func run(_ input: [UInt8]) throws(FuzzFinding) {
        var finding: FuzzFinding?
        input.withUnsafeBytes { bytes in
            do throws(FuzzFinding) {
                try run(bytes)
            } catch {
                finding = error
            }
        }
        if let finding { throw finding }
    }

    /// For `LLVMFuzzerTestOneInput`: a finding traps, which libFuzzer reports as a crash and
    /// saves the input of.
    public func runOrTrap(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        do {
            try run(UnsafeRawBufferPointer(start: data, count: size))
        } catch {
            fatalError("\(rawValue) fuzz target: \(error)")
        }
    }
}

/// An outcome a fuzz target's checks refuse, though nothing crashed.
public struct FuzzFinding: Error, CustomStringConvertible {
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}

#endif
