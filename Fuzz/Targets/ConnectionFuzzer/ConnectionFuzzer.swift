import LBPoolFuzzEntries

/// libFuzzer's entry point for fuzzing a whole client connection on an embedded channel (see
/// `FuzzTarget.connection`). Built with `--sanitize fuzzer`, which links libFuzzer and its
/// `main`; `make fuzz` runs it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.connection.runOrTrap(data, size)
    return 0
}
