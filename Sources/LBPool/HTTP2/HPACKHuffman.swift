import NIOCore

/// The Huffman code HPACK may write string literals in (RFC 7541 §5.2 and Appendix B).
///
/// The code is canonical: codes of one length are consecutive, in symbol order, and each length
/// starts where the shorter ones end. So the lengths of Appendix B define it, and the codes are
/// computed from them; the tests check the result against the RFC's examples and NIOHPACK.
enum HPACKHuffman {
    /// Code length in bits of each byte 0...255 and of EOS (256), from RFC 7541 Appendix B.
    static let lengths: [UInt8] = [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,  // 0-15
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,  // 16-31
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,  // 32-47
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,  // 48-63
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  // 64-79
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,  // 80-95
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,  // 96-111
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,  // 112-127
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,  // 128-143
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,  // 144-159
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,  // 160-175
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,  // 176-191
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,  // 192-207
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,  // 208-223
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,  // 224-239
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,  // 240-255
        30,  // 256-256
    ]

    /// Each symbol's code, right-aligned, built from ``lengths``.
    static let codes: [UInt32] = {
        let order = (0..<257).sorted { (lengths[$0], $0) < (lengths[$1], $1) }
        var codes = [UInt32](repeating: 0, count: 257)
        var code: UInt32 = 0
        var length = lengths[order[0]]
        for (position, symbol) in order.enumerated() {
            if position > 0 {
                code = (code + 1) << UInt32(lengths[symbol] - length)
                length = lengths[symbol]
            }
            codes[symbol] = code
        }
        return codes
    }()

    /// Bytes `value` takes Huffman-encoded.
    static func encodedCount(_ value: String) -> Int {
        var value = value
        return value.withUTF8 { bytes in
            lengths.withUnsafeBufferPointer { lengths in
                var bits = 0
                for byte in bytes { bits &+= Int(lengths[Int(byte)]) }
                return (bits + 7) / 8
            }
        }
    }

    /// Appends `value` Huffman-encoded, padded with the most significant bits of EOS (all
    /// ones); `count` is its ``encodedCount(_:)``.
    static func encode(_ value: String, count: Int, into buffer: inout ByteBuffer) {
        var value = value
        value.withUTF8 { bytes in
            codes.withUnsafeBufferPointer { codes in
                lengths.withUnsafeBufferPointer { lengths in
                    _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { out in
                        var pending: UInt64 = 0
                        var pendingBits: UInt64 = 0
                        var written = 0
                        for byte in bytes {
                            let length = UInt64(lengths[Int(byte)])
                            pending = pending << length | UInt64(codes[Int(byte)])
                            pendingBits += length
                            while pendingBits >= 8 {
                                pendingBits -= 8
                                out[written] = UInt8(truncatingIfNeeded: pending >> pendingBits)
                                written += 1
                            }
                        }
                        if pendingBits > 0 {
                            let padding = 8 - pendingBits
                            out[written] = UInt8(truncatingIfNeeded: pending << padding | (1 << padding - 1))
                            written += 1
                        }
                        return written
                    }
                }
            }
        }
    }
}

extension HPACKHuffman {
    /// For canonical decoding: per code length, the first code of that length and where its
    /// symbols start in ``symbolsByCode``.
    private struct Canonical {
        var firstCode = [UInt32](repeating: 0, count: 32)
        var count = [UInt32](repeating: 0, count: 32)
        var firstPosition = [Int](repeating: 0, count: 32)
        /// Symbols in code order (by length, then symbol).
        var symbolsByCode: [UInt16] = []
        /// The symbol and length of every code of at most 8 bits, indexed by the next 8 input
        /// bits; length 0 where a longer code starts.
        var short = [(symbol: UInt16, length: UInt8)](repeating: (0, 0), count: 256)
    }

    private static let canonical: Canonical = {
        var table = Canonical()
        let order = (0..<257).sorted { (lengths[$0], $0) < (lengths[$1], $1) }
        table.symbolsByCode = order.map { UInt16($0) }
        for (position, symbol) in order.enumerated() {
            let length = Int(lengths[symbol])
            if table.count[length] == 0 {
                table.firstCode[length] = codes[symbol]
                table.firstPosition[length] = position
            }
            table.count[length] += 1
            if length <= 8 {
                let shift = 8 - length
                let start = Int(codes[symbol]) << shift
                for pattern in start..<(start + (1 << shift)) {
                    table.short[pattern] = (UInt16(symbol), UInt8(length))
                }
            }
        }
        return table
    }()

    /// Decodes a Huffman-coded string literal; `nil` if it is not valid: a code for EOS, or
    /// padding that is longer than 7 bits or not a prefix of EOS (RFC 7541 §5.2). `octets` is the
    /// number of bytes decoded, which is what the dynamic table counts (RFC 7541 §4.1): the text
    /// has fewer UTF-8 bytes or more when the decoded bytes are not UTF-8 (each bad byte becomes
    /// U+FFFD, three bytes).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> (text: String, octets: Int)? {
        let table = canonical
        // A code is at least 5 bits, so the text is at most 8/5 of the input.
        let capacity = bytes.count * 8 / 5 + 1
        var valid = true
        var octets = 0
        let text = String(unsafeUninitializedCapacity: capacity) { out in
            var written = 0
            var pending: UInt64 = 0
            var pendingBits = 0
            var input = 0
            while true {
                // Keep at least 30 bits (the longest code) while there is input.
                while pendingBits <= 56, input < bytes.count {
                    pending = pending << 8 | UInt64(bytes[input])
                    pendingBits += 8
                    input += 1
                }
                if pendingBits == 0 { break }
                let peek8 = UInt32(truncatingIfNeeded: pendingBits >= 8 ? pending >> UInt64(pendingBits - 8) : pending << UInt64(8 - pendingBits)) & 0xFF
                let short = table.short[Int(peek8)]
                if short.length > 0, Int(short.length) <= pendingBits {
                    out[written] = UInt8(truncatingIfNeeded: short.symbol)
                    written += 1
                    pendingBits -= Int(short.length)
                    continue
                }
                // A longer code: walk the lengths from 9 up.
                var symbol: UInt16?
                var length = 9
                while length <= 30, length <= pendingBits {
                    let code = UInt32(truncatingIfNeeded: pending >> UInt64(pendingBits - length)) & UInt32((1 << length) - 1)
                    let offset = code &- table.firstCode[length]
                    if table.count[length] > 0, code >= table.firstCode[length], offset < table.count[length] {
                        symbol = table.symbolsByCode[table.firstPosition[length] + Int(offset)]
                        break
                    }
                    length += 1
                }
                guard let symbol, symbol != 256 else {
                    // No whole code left: what remains must be padding, up to 7 bits of ones.
                    let ones = pendingBits < 64 ? (UInt64(1) << UInt64(pendingBits)) - 1 : .max
                    valid = pendingBits <= 7 && pending & ones == ones && symbol == nil
                    break
                }
                out[written] = UInt8(truncatingIfNeeded: symbol)
                written += 1
                pendingBits -= length
            }
            octets = written
            return written
        }
        return valid ? (text, octets) : nil
    }
}
