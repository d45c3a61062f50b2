#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The default key of ``LBPool/Configuration/Subset``: this host's name, `/`, and 16 random
/// hexadecimal digits (a salt of this pool's own).
enum SubsetKey {
    static func drawn() -> String {
        var salt = String(UInt64.random(in: .min ... .max), radix: 16)
        salt = String(repeating: "0", count: 16 - salt.count) + salt
        return "\(hostName())/\(salt)"
    }

    /// `gethostname`, or `localhost` when it fails.
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return bytes.isEmpty ? "localhost" : String(decoding: bytes, as: UTF8.self)
    }
}
