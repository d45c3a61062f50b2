import LBPoolFuzzEntries

/// libFuzzer's entry point for fuzzing the HPACK decoder against NIOHPACK's (see
/// `FuzzTarget.hpackDecoder`). Built with `--sanitize fuzzer`, which links libFuzzer and its
/// `main`; `make fuzz` runs it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.hpackDecoder.runOrTrap(data, size)
    return 0
}
