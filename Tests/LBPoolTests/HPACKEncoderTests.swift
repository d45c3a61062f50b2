import HTTPTypes
import NIOCore
import NIOHPACK
import Testing
@testable import LBPool

/// The client's HPACK encoder, checked against RFC 7541's examples and against NIOHPACK's
/// decoder as an independent reader.
@Suite struct HPACKEncoderTests {
    func hex(_ buffer: ByteBuffer) -> String {
        buffer.readableBytesView.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    @Test func huffmanCodesMatchRFC7541Examples() {
        // RFC 7541 Appendix C.4 and C.6.
        let examples = [
            ("www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"),
            ("no-cache", "a8eb10649cbf"),
            ("custom-key", "25a849e95ba97d7f"),
            ("custom-value", "25a849e95bb8e8b4bf"),
            ("302", "6402"),
            ("private", "aec3771a4b"),
            ("Mon, 21 Oct 2013 20:13:21 GMT", "d07abe941054d444a8200595040b8166e082a62d1bff"),
            ("https://www.example.com", "9d29ad171863c78f0b97c8e9ae82ae43d3"),
            ("gzip", "9bd9ab"),
            (
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
                "94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"
            ),
        ]
        for (text, expected) in examples {
            var buffer = ByteBuffer()
            HPACKHuffman.encode(text, count: HPACKHuffman.encodedCount(text), into: &buffer)
            #expect(hex(buffer) == expected, "\(text)")
            #expect(HPACKHuffman.encodedCount(text) == expected.count / 2, "\(text)")
        }
    }

    @Test func theCodeIsCompleteAndPrefixFree() {
        // Kraft's equality: a complete prefix code's 2^-length sum to exactly 1.
        let maxLength = Int(HPACKHuffman.lengths.max() ?? 0)
        let sum = HPACKHuffman.lengths.reduce(0) { $0 + (1 << (maxLength - Int($1))) }
        #expect(sum == 1 << maxLength)
        #expect(HPACKHuffman.codes[256] == 0x3FFF_FFFF, "EOS is thirty ones")
        #expect(HPACKHuffman.codes[0] == 0x1FF8)
    }

    @Test func requestsOfRFC7541AppendixC4AreEncodedByteForByte() {
        // Three requests on one connection, Huffman-coded (RFC 7541 C.4.1 to C.4.3).
        var encoder = HeaderBlockEncoder()
        var first = ByteBuffer()
        for (name, value) in [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")] {
            encoder.append(name: name, value: value, indexing: .indexed, into: &first)
        }
        #expect(hex(first) == "828684418cf1e3c2e5f23a6ba0ab90f4ff")
        var second = ByteBuffer()
        for (name, value) in [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"), ("cache-control", "no-cache")] {
            encoder.append(name: name, value: value, indexing: .indexed, into: &second)
        }
        #expect(hex(second) == "828684be5886a8eb10649cbf")
        var third = ByteBuffer()
        for (name, value) in [
            (":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"), ("custom-key", "custom-value"),
        ] {
            encoder.append(name: name, value: value, indexing: .indexed, into: &third)
        }
        #expect(hex(third) == "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")
    }

    @Test func nioHPACKDecodesWhatItWritesAcrossManyBlocksAndTableEvictions() throws {
        var encoder = HeaderBlockEncoder()
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        // Every byte value a field value may hold, long values that evict the table, and the
        // three indexing modes.
        let everyByte = String(decoding: (0x20...0x7E).map { UInt8($0) } + (0x80...0xFF).map { UInt8($0) }, as: UTF8.self)
        for round in 0..<200 {
            var request = HTTPRequest(method: round % 3 == 0 ? .post : .get, scheme: nil, authority: nil, path: "/items/\(round % 7)")
            request.headerFields[HTTPField.Name("x-round")!] = "\(round)"
            request.headerFields[HTTPField.Name("x-long")!] = String(repeating: "v\(round % 5)", count: 300)
            request.headerFields[.userAgent] = "lbpool-test"
            var secret = HTTPField(name: .authorization, value: "Bearer \(round)")
            secret.indexingStrategy = .disallow
            request.headerFields.append(secret)
            var id = HTTPField(name: HTTPField.Name("x-request-id")!, value: "id-\(round)")
            id.indexingStrategy = .avoid
            request.headerFields.append(id)
            if round % 10 == 0 { request.headerFields[HTTPField.Name("x-bytes")!] = everyByte }
            let head = RequestHead(request, scheme: "https", authority: "api.example:8443", bodyLength: round % 3 == 0 ? round : nil)
            if round == 100 { encoder.setMaxSize(256) }
            if round == 150 { encoder.setMaxSize(8192) }

            var block = ByteBuffer()
            encoder.encode(head, into: &block)
            if round == 150 { decoder.maxDynamicTableLength = 4096 }
            let decoded = try decoder.decodeHeaders(from: &block)
            var expected: [(String, String)] = []
            head.forEachField { name, value, _ in expected.append((name, value)) }
            #expect(decoded.map(\.name) == expected.map(\.0), "round \(round)")
            #expect(decoded.map(\.value) == expected.map(\.1), "round \(round)")
            let authorization = decoded.first { $0.name == "authorization" }
            #expect(authorization?.indexable == .neverIndexed, "round \(round)")
        }
    }

    @Test func pseudoHeadersAreReusedOnlyWhileTheTableIsUnchanged() throws {
        var encoder = HeaderBlockEncoder()
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        // The authority sits in the dynamic table: its index moves with every insertion.
        func head(path: String, extra: String?) -> RequestHead {
            var request = HTTPRequest(method: .get, scheme: nil, authority: nil, path: path)
            if let extra { request.headerFields[HTTPField.Name("x-extra")!] = extra }
            var id = HTTPField(name: HTTPField.Name("x-request-id")!, value: "\(path)-\(extra ?? "")")
            id.indexingStrategy = .avoid
            request.headerFields.append(id)
            return RequestHead(request, scheme: "http", authority: "api.example:8080", bodyLength: nil)
        }
        let sequence = [
            head(path: "/", extra: nil), head(path: "/", extra: nil), head(path: "/", extra: "one"),
            head(path: "/", extra: nil), head(path: "/", extra: nil), head(path: "/other", extra: nil),
            head(path: "/", extra: "two"), head(path: "/", extra: "two"), head(path: "/", extra: nil),
        ]
        var sizes: [Int] = []
        for (round, request) in sequence.enumerated() {
            if round == 7 { encoder.setMaxSize(64) }
            if round == 7 { decoder.maxDynamicTableLength = 64 }
            var block = ByteBuffer()
            encoder.encode(request, into: &block)
            sizes.append(block.readableBytes)
            let decoded = try decoder.decodeHeaders(from: &block)
            var expected: [(String, String)] = []
            request.forEachField { name, value, _ in expected.append((name, value)) }
            #expect(decoded.map(\.name) == expected.map(\.0), "round \(round)")
            #expect(decoded.map(\.value) == expected.map(\.1), "round \(round)")
        }
        // The second request repeats the first's pseudo-headers as four indices.
        #expect(sizes[1] < sizes[0], "\(sizes)")
    }

    @Test func aRepeatedRequestCostsOneByteAFieldOnceItsFieldsAreIndexed() {
        var encoder = HeaderBlockEncoder()
        var request = HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/api/items")
        request.headerFields[.userAgent] = "lbpool"
        let head = RequestHead(request, scheme: "http", authority: "api:8080", bodyLength: nil)
        var first = ByteBuffer()
        encoder.encode(head, into: &first)
        var again = ByteBuffer()
        encoder.encode(head, into: &again)
        #expect(again.readableBytes == 5, "\(hex(again))")
        #expect(first.readableBytes > again.readableBytes)
    }

    @Test func integersUseTheirPrefixAndContinuationBytes() {
        // RFC 7541 C.1: 10 with a 5-bit prefix, 1337 with a 5-bit prefix, 42 with an 8-bit one.
        var buffer = ByteBuffer()
        buffer.writeHPACKInteger(10, prefix: 5, flags: 0)
        buffer.writeHPACKInteger(1337, prefix: 5, flags: 0)
        buffer.writeHPACKInteger(42, prefix: 8, flags: 0)
        #expect(hex(buffer) == "0a1f9a0a2a")
    }
}
