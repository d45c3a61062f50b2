import NIOCore
import NIOHPACK
import Testing
@testable import LBPool

/// The client's HPACK decoder, checked against NIOHPACK's encoder as an independent writer,
/// against the client's own encoder, and with blocks that must be refused.
@Suite struct HPACKDecoderTests {
    func decode(_ decoder: inout HeaderBlockDecoder, _ block: ByteBuffer) throws(HeaderBlockDecoder.Failure) -> [(String, String)] {
        var fields: [(String, String)] = []
        try decoder.decode(block) { fields.append(($0, $1)) }
        return fields
    }

    func bytes(_ hex: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        var digits = Substring(hex.filter { !$0.isWhitespace })
        while !digits.isEmpty {
            buffer.writeInteger(UInt8(digits.prefix(2), radix: 16)!)
            digits = digits.dropFirst(2)
        }
        return buffer
    }

    @Test func huffmanStringsRoundTripForEveryByteValueAndTheRFCExamples() {
        let texts =
            [
                "www.example.com", "no-cache", "custom-key", "Mon, 21 Oct 2013 20:13:21 GMT", "302", "",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ]
            + (0...255).map { String(decoding: [UInt8($0), UInt8($0), UInt8(255 - $0)], as: UTF8.self) }
        for text in texts {
            var buffer = ByteBuffer()
            HPACKHuffman.encode(text, count: HPACKHuffman.encodedCount(text), into: &buffer)
            let decoded = buffer.withUnsafeReadableBytes { HPACKHuffman.decode($0)?.text }
            #expect(decoded == text, "\(text.utf8.map { $0 })")
        }
    }

    @Test func invalidHuffmanPaddingAndEOSAreRefused() {
        // 'a' (00011) then three ones: valid. Then: padding of zeros, 8 bits of padding, and
        // the 30-bit EOS code itself.
        let valid: [UInt8] = [0b0001_1111]
        let zeroPadding: [UInt8] = [0b0001_1000]
        let longPadding: [UInt8] = [0b0001_1111, 0xFF]
        let eos: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF]
        #expect(valid.withUnsafeBytes { HPACKHuffman.decode($0)?.text } == "a")
        #expect(zeroPadding.withUnsafeBytes { HPACKHuffman.decode($0)?.text } == nil)
        #expect(longPadding.withUnsafeBytes { HPACKHuffman.decode($0)?.text } == nil)
        #expect(eos.withUnsafeBytes { HPACKHuffman.decode($0)?.text } == nil)
    }

    @Test func whatNIOHPACKWritesIsReadBackAcrossTableEvictionsAndResizes() throws {
        for huffman in [true, false] {
            var encoder = HPACKEncoder(allocator: ByteBufferAllocator(), useHuffmanEncoding: huffman)
            var decoder = HeaderBlockDecoder()
            for round in 0..<300 {
                var headers = HPACKHeaders()
                headers.add(name: ":status", value: ["200", "404", "503", "201"][round % 4])
                headers.add(name: "server", value: "nginx")
                headers.add(name: "date", value: "Sun, 22 Nov 2026 05:\(round % 60):00 GMT")
                headers.add(name: "x-round", value: "\(round)", indexing: round % 2 == 0 ? .indexable : .nonIndexable)
                headers.add(name: "x-secret", value: "s\(round)", indexing: .neverIndexed)
                headers.add(name: "x-long-\(round % 9)", value: String(repeating: "v", count: 200 + round))
                if round % 17 == 0 { headers.add(name: "x-bytes", value: String(decoding: (1...255).map { UInt8($0) }, as: UTF8.self)) }
                if round == 120 { try encoder.setDynamicTableSize(300) }
                if round == 200 { try encoder.setDynamicTableSize(4096) }
                var block = ByteBuffer()
                try encoder.encode(headers: headers, to: &block)
                let fields = try decode(&decoder, block)
                #expect(fields.map(\.0) == headers.map(\.name), "round \(round)")
                #expect(fields.map(\.1) == headers.map(\.value), "round \(round)")
            }
        }
    }

    @Test func theClientsOwnEncoderIsReadBack() throws {
        // RFC 7541 C.4: three requests on one connection, as the encoder writes them.
        var decoder = HeaderBlockDecoder()
        #expect(
            try decode(&decoder, bytes("828684418cf1e3c2e5f23a6ba0ab90f4ff")).map { "\($0.0)=\($0.1)" }
                == [":method=GET", ":scheme=http", ":path=/", ":authority=www.example.com"])
        #expect(
            try decode(&decoder, bytes("828684be5886a8eb10649cbf")).map { "\($0.0)=\($0.1)" }
                == [":method=GET", ":scheme=http", ":path=/", ":authority=www.example.com", "cache-control=no-cache"])
        #expect(
            try decode(&decoder, bytes("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")).map { "\($0.0)=\($0.1)" }
                == [":method=GET", ":scheme=https", ":path=/index.html", ":authority=www.example.com", "custom-key=custom-value"])
    }

    @Test func malformedBlocksAreRefusedWithTheReason() {
        let cases: [(String, String)] = [
            ("be", "index 62 out of range"),
            ("80", "index 0 out of range"),
            ("ff", "ends inside an integer"),
            ("ffffffffff0f", "integer too large"),
            ("4005616263", "past the end"),
            ("3fe21f", "above the 4096 allowed"),
            ("8220", "size update after a header field"),
            ("0081ff", "invalid Huffman code"),
        ]
        for (hex, reason) in cases {
            var decoder = HeaderBlockDecoder()
            do {
                _ = try decode(&decoder, bytes(hex))
                Issue.record("\(hex) was decoded")
            } catch {
                #expect(error.description.contains(reason), "\(hex): \(error)")
            }
        }
    }

    /// A literal string of raw octets (RFC 7541 §5.2), Huffman-coded with the RFC's table if asked.
    func literal(_ octets: [UInt8], huffman: Bool) -> [UInt8] {
        var payload = octets
        if huffman {
            payload = []
            var pending: UInt64 = 0
            var bits = 0
            for octet in octets {
                pending = pending << UInt64(HPACKHuffman.lengths[Int(octet)]) | UInt64(HPACKHuffman.codes[Int(octet)])
                bits += Int(HPACKHuffman.lengths[Int(octet)])
                while bits >= 8 {
                    payload.append(UInt8(truncatingIfNeeded: pending >> UInt64(bits - 8)))
                    bits -= 8
                }
            }
            if bits > 0 { payload.append(UInt8(truncatingIfNeeded: pending << UInt64(8 - bits)) | UInt8(0xFF >> bits)) }
        }
        // The length as a 7-bit-prefix integer, with the H flag.
        var out: [UInt8] = []
        let flag: UInt8 = huffman ? 0x80 : 0
        if payload.count < 127 {
            out.append(flag | UInt8(payload.count))
        } else {
            out.append(flag | 127)
            var rest = payload.count - 127
            while rest >= 128 {
                out.append(UInt8(rest % 128) | 0x80)
                rest /= 128
            }
            out.append(UInt8(rest))
        }
        return out + payload
    }

    @Test(arguments: [false, true])
    func tableSizeCountsTheOctetsOnTheWireNotTheDecodedText(huffman: Bool) throws {
        // Two entries of 1033 and 2033 octets fit the 4096-octet table together. The first value's
        // bytes are not UTF-8, so its decoded text is three times as long (U+FFFD for each byte):
        // counting the text would evict it, and index 63 would then be out of range.
        let notUTF8 = [UInt8](repeating: 0xE9, count: 1000)
        var block: [UInt8] = [0x40] + literal(Array("a".utf8), huffman: huffman) + literal(notUTF8, huffman: huffman)
        block += [0x40] + literal(Array("b".utf8), huffman: huffman) + literal([UInt8](repeating: 0x79, count: 2000), huffman: huffman)
        block += [0xBF, 0xBE]
        var decoder = HeaderBlockDecoder()
        let fields = try decode(&decoder, ByteBuffer(bytes: block))
        let expectedA = String(decoding: notUTF8, as: UTF8.self)
        let expectedB = String(repeating: "y", count: 2000)
        #expect(fields.map(\.0) == ["a", "b", "a", "b"])
        #expect(fields[2].1 == expectedA && fields[3].1 == expectedB)
        // A third entry of 1033 octets pushes out exactly the oldest one, as the encoder's table does.
        let third: [UInt8] = [0x40] + literal(Array("c".utf8), huffman: huffman) + literal(notUTF8, huffman: huffman)
        #expect(try decode(&decoder, ByteBuffer(bytes: third + [0xBE, 0xBF])).map(\.0) == ["c", "c", "b"])
        #expect(throws: HeaderBlockDecoder.Failure.self) { try decode(&decoder, ByteBuffer(bytes: [0xC0])) }
    }
}
