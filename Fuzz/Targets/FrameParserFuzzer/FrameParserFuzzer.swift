import LBPoolFuzzEntries

/// libFuzzer's entry point for fuzzing the HTTP/2 frame parser (see `FuzzTarget.frameParser`).
/// Built with `--sanitize fuzzer`, which links libFuzzer and its `main`; `make fuzz` runs it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.frameParser.runOrTrap(data, size)
    return 0
}
