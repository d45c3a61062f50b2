#if DEBUG
import NIOCore
import NIOHPACK
@testable import LBPool

/// Seed inputs for the fuzz targets: small, meaningful cases of what each target reads (valid
/// frames of every type the client handles, header blocks with Huffman literals and dynamic
/// table entries, and malformed ones), named for what they are. `make fuzz-seeds` writes them
/// to a folder; the committed corpus started from them (see `Fuzz/README.md`).
public enum FuzzSeeds {
    /// The named seeds of `target`.
    public static func seeds(for target: FuzzTarget) -> [(name: String, bytes: [UInt8])] {
        let seeds: [(String, ByteBuffer)]
        switch target {
        case .frameParser: seeds = frameParserSeeds()
        case .hpackDecoder: seeds = hpackSeeds()
        case .connection: seeds = connectionSeeds()
        }
        return seeds.map { ($0.0, Array($0.1.readableBytesView)) }
    }

    // MARK: - Frames

    static func frame(_ type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: ByteBuffer = ByteBuffer()) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeHTTP2FrameHeader(length: payload.readableBytes, type: type, flags: flags, stream: stream)
        buffer.writeImmutableBuffer(payload)
        return buffer
    }

    static func bytes(_ values: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: values) }

    static func settings(_ values: [(UInt16, UInt32)]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeHTTP2Settings(values.map { (identifier: $0.0, value: $0.1) })
        return buffer
    }

    static func u32(_ value: UInt32) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(value)
        return buffer
    }

    static func goAway(last: UInt32, code: HTTP2Code, debug: String = "") -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeHTTP2GoAway(lastStreamID: last, code: code, debugData: debug)
        return buffer
    }

    static func ping(_ opaque: UInt64, ack: Bool = false) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeHTTP2Ping(opaque: opaque, ack: ack)
        return buffer
    }

    static func windowUpdate(_ stream: UInt32, _ increment: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeHTTP2WindowUpdate(stream: stream, increment: increment)
        return buffer
    }

    static func data(_ stream: UInt32, _ text: String, endStream: Bool = false, padding: Int? = nil) -> ByteBuffer {
        var payload = ByteBuffer()
        if let padding { payload.writeInteger(UInt8(padding)) }
        payload.writeString(text)
        if let padding { payload.writeRepeatingByte(0, count: padding) }
        let flags = (endStream ? HTTP2FrameType.endStream : 0) | (padding != nil ? HTTP2FrameType.padded : 0)
        return frame(HTTP2FrameType.data, flags: flags, stream: stream, payload)
    }

    static func headers(_ stream: UInt32, _ block: ByteBuffer, endStream: Bool = false, endHeaders: Bool = true, padding: Int? = nil, priority: Bool = false)
        -> ByteBuffer
    {
        var payload = ByteBuffer()
        if let padding { payload.writeInteger(UInt8(padding)) }
        if priority { payload.writeBytes([0x80, 0, 0, 0, 15]) }
        payload.writeImmutableBuffer(block)
        if let padding { payload.writeRepeatingByte(0, count: padding) }
        let flags =
            (endStream ? HTTP2FrameType.endStream : 0) | (endHeaders ? HTTP2FrameType.endHeaders : 0)
            | (padding != nil ? HTTP2FrameType.padded : 0) | (priority ? HTTP2FrameType.priorityFlag : 0)
        return frame(HTTP2FrameType.headers, flags: flags, stream: stream, payload)
    }

    static func join(_ buffers: ByteBuffer...) -> ByteBuffer {
        var all = ByteBuffer()
        for buffer in buffers { all.writeImmutableBuffer(buffer) }
        return all
    }

    /// The frame parser's input: the piece length byte, then frames.
    static func frameParserSeeds() -> [(String, ByteBuffer)] {
        var encoder = ResponseEncoder(huffman: true)
        let block = encoder.block([(":status", "200"), ("content-type", "text/plain"), ("x-request-id", "abc123")])
        let cases: [(String, ByteBuffer)] = [
            ("settings-empty", settings([])),
            ("settings-values", settings([(1, 0), (3, 100), (4, 1 << 20), (5, 1 << 14), (6, 8192), (0x99, 7)])),
            ("settings-ack", frame(HTTP2FrameType.settings, flags: HTTP2FrameType.ack)),
            ("ping", ping(0x0102_0304_0506_0708)),
            ("ping-ack", ping(42, ack: true)),
            ("goaway-debug", goAway(last: 7, code: HTTP2Code.protocolError, debug: "too many streams")),
            ("window-update-connection", windowUpdate(0, 1 << 20)),
            ("window-update-stream-reserved-bit", frame(HTTP2FrameType.windowUpdate, stream: 1, u32(0x8000_0010))),
            ("rst-stream", frame(HTTP2FrameType.rstStream, stream: 1, u32(HTTP2Code.cancel.rawValue))),
            ("headers", headers(1, block, endStream: true)),
            ("headers-padded-priority", headers(3, block, padding: 4, priority: true)),
            (
                "headers-continuation",
                join(
                    headers(1, block.getSlice(at: 0, length: 3)!, endHeaders: false),
                    frame(HTTP2FrameType.continuation, stream: 1, block.getSlice(at: 3, length: 4)!),
                    frame(HTTP2FrameType.continuation, flags: HTTP2FrameType.endHeaders, stream: 1, block.getSlice(at: 7, length: block.readableBytes - 7)!))
            ),
            ("data-padded", data(1, "hello", endStream: true, padding: 6)),
            ("data-empty-end", data(5, "", endStream: true)),
            ("priority", frame(HTTP2FrameType.priority, stream: 3, bytes([0, 0, 0, 1, 16]))),
            ("unknown-type", frame(0x20, flags: 0xFF, stream: 9, bytes([1, 2, 3]))),
            ("bad-settings-length", frame(HTTP2FrameType.settings, bytes([0, 3, 0, 0, 0]))),
            ("bad-settings-ack-payload", frame(HTTP2FrameType.settings, flags: HTTP2FrameType.ack, bytes([0, 0, 0, 0, 0, 0]))),
            ("bad-settings-on-stream", frame(HTTP2FrameType.settings, stream: 1)),
            ("bad-ping-length", frame(HTTP2FrameType.ping, bytes([1, 2, 3, 4, 5, 6, 7]))),
            ("bad-data-stream-zero", data(0, "x")),
            ("bad-padding-too-long", frame(HTTP2FrameType.data, flags: HTTP2FrameType.padded, stream: 1, bytes([9, 0x61, 0x62]))),
            (
                "bad-headers-priority-short",
                frame(HTTP2FrameType.headers, flags: HTTP2FrameType.priorityFlag | HTTP2FrameType.endHeaders, stream: 1, bytes([0, 0, 1]))
            ),
            ("bad-continuation-alone", frame(HTTP2FrameType.continuation, flags: HTTP2FrameType.endHeaders, stream: 1, bytes([0x88]))),
            ("bad-continuation-other-stream", join(headers(1, bytes([0x88]), endHeaders: false), frame(HTTP2FrameType.continuation, stream: 3, bytes([0x88])))),
            ("bad-interleaved-ping-in-block", join(headers(1, bytes([0x88]), endHeaders: false), ping(1))),
            ("bad-push-promise", frame(HTTP2FrameType.pushPromise, flags: HTTP2FrameType.endHeaders, stream: 1, bytes([0, 0, 0, 2, 0x82]))),
            ("bad-goaway-short", frame(HTTP2FrameType.goAway, bytes([0, 0, 0, 1]))),
            ("bad-window-update-length", frame(HTTP2FrameType.windowUpdate, stream: 1, bytes([0, 0, 1]))),
            ("bad-rst-length", frame(HTTP2FrameType.rstStream, stream: 1, bytes([0, 0, 0, 0, 8]))),
            ("bad-frame-too-large", bytes([0x00, 0x40, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01])),
            ("truncated-frame", bytes([0x00, 0x00, 0x08, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01])),
        ]
        var seeds: [(String, ByteBuffer)] = []
        for (name, frames) in cases {
            seeds.append((name, join(bytes([0]), frames)))
        }
        let mix = join(
            settings([(4, 100)]), headers(1, block), data(1, "abc", padding: 2), ping(3), windowUpdate(1, 10),
            data(1, "def", endStream: true), goAway(last: 1, code: .noError))
        seeds.append(("mix-whole", join(bytes([0]), mix)))
        seeds.append(("mix-bytewise", join(bytes([1]), mix)))
        seeds.append(("mix-pieces-13", join(bytes([13]), mix)))
        return seeds
    }

    // MARK: - Header blocks

    /// A server's HPACK encoder (NIOHPACK's), for response header blocks.
    struct ResponseEncoder {
        var encoder: HPACKEncoder

        init(huffman: Bool) {
            encoder = HPACKEncoder(allocator: ByteBufferAllocator(), useHuffmanEncoding: huffman)
        }

        mutating func block(_ fields: [(String, String)], indexing: NIOHPACK.HPACKIndexing = .indexable) -> ByteBuffer {
            var headers = HPACKHeaders()
            for (name, value) in fields { headers.add(name: name, value: value, indexing: indexing) }
            var buffer = ByteBuffer()
            // Encoding valid fields into a buffer does not fail.
            try? encoder.encode(headers: headers, to: &buffer)
            return buffer
        }
    }

    /// The HPACK target's input: each block after its length (see ``HPACKDecoderFuzzEntry``).
    static func blocks(_ blocks: [ByteBuffer]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for block in blocks {
            let length = block.readableBytes
            if length < 0x80 {
                buffer.writeInteger(UInt8(length))
            } else {
                buffer.writeInteger(UInt16(0x8000 | length))
            }
            buffer.writeImmutableBuffer(block)
        }
        return buffer
    }

    static func hex(_ text: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        var digits = Substring(text.filter { !$0.isWhitespace })
        while digits.count >= 2, let byte = UInt8(digits.prefix(2), radix: 16) {
            buffer.writeInteger(byte)
            digits = digits.dropFirst(2)
        }
        return buffer
    }

    static func responses(huffman: Bool, rounds: Int, indexing: NIOHPACK.HPACKIndexing = .indexable) -> [ByteBuffer] {
        var encoder = ResponseEncoder(huffman: huffman)
        return (0..<rounds).map { round in
            encoder.block(
                [
                    (":status", ["200", "404", "302"][round % 3]), ("server", "nginx/1.27"),
                    ("date", "Mon, 21 Oct 2013 20:13:\(10 + round) GMT"), ("content-type", "application/json"),
                    ("x-trace", String(repeating: "t", count: 10 * round)), ("set-cookie", "id=\(round); path=/; HttpOnly"),
                ], indexing: indexing)
        }
    }

    static func hpackSeeds() -> [(String, ByteBuffer)] {
        let longValue = String(repeating: "v", count: 1500)
        var big = ResponseEncoder(huffman: false)
        let evicting = (0..<4).map { big.block([("x-big-\($0)", longValue)]) }
        return [
            ("responses-huffman-indexed", blocks(responses(huffman: true, rounds: 4))),
            ("responses-plain-indexed", blocks(responses(huffman: false, rounds: 4))),
            ("responses-not-indexed", blocks(responses(huffman: true, rounds: 2, indexing: .nonIndexable))),
            ("responses-never-indexed", blocks(responses(huffman: false, rounds: 2, indexing: .neverIndexed))),
            ("evictions-large-entries", blocks(evicting)),
            // A size update to 0 empties the table, then back to 4096; then a new entry and its index.
            ("size-update-flush", blocks([hex("20 3fe11f 40 03 666f6f 03 626172"), hex("be 88")])),
            // Two updates (the smallest, then the final size) before the first field.
            ("size-update-two", blocks([hex("3f45 3fe11f 88")])),
            ("size-update-three", blocks([hex("20 3f45 3fe11f 88")])),
            ("size-update-after-field", blocks([hex("88 20")])),
            ("size-update-too-large", blocks([hex("3fe21f")])),
            // Table of 100 bytes, then an entry larger than it: the table empties and stays so.
            ("size-update-entry-larger-than-table", blocks([hex("3f45 40 01 61 7f 00") + ByteBuffer(repeating: 0x62, count: 127), hex("be")])),
            ("indexed-static-all", blocks([ByteBuffer(bytes: (1...61).map { UInt8(0x80 | $0) })])),
            ("indexed-zero", blocks([hex("80")])),
            ("indexed-out-of-range", blocks([hex("ff 00")])),
            ("literal-new-name-huffman", blocks([hex("40 88 25a849e95ba97d7f 89 25a849e95bb8e8b4bf")])),
            ("literal-empty-name", blocks([hex("40 00 01 61")])),
            ("literal-indexed-name-never", blocks([hex("14 0c 2f73616d706c652f70617468")])),
            ("integer-max-continuations", blocks([hex("ff ff ff ff 7f")])),
            ("integer-non-minimal", blocks([hex("ff 80 80 80 80 00")])),
            ("string-truncated", blocks([hex("40 0a 61 62")])),
            ("huffman-eos", blocks([hex("40 01 61 84 ffffffff")])),
            ("huffman-bad-padding", blocks([hex("40 01 61 81 18")])),
            ("huffman-long-padding", blocks([hex("40 01 61 82 1fff")])),
            ("huffman-all-bytes", blocks([hpackLiteral(name: "x-bytes", value: (0...255).map { UInt8($0) }, huffman: true)])),
            ("raw-invalid-utf8", blocks([hpackLiteral(name: "x-latin1", value: [0x63, 0x61, 0x66, 0xE9], huffman: false), hex("be")])),
            ("header-block-truncated-integer", blocks([hex("7f")])),
        ]
    }

    /// A literal with incremental indexing and a new name, its value given as bytes (which need
    /// not be UTF-8), Huffman-coded or not.
    static func hpackLiteral(name: String, value: [UInt8], huffman: Bool) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(0x40))
        buffer.writeHPACKString(name)
        if huffman {
            // HPACKHuffman works on Strings; only the all-ASCII part of a value can go through it.
            let text = String(decoding: value.filter { $0 < 0x80 }, as: UTF8.self)
            let count = HPACKHuffman.encodedCount(text)
            buffer.writeHPACKInteger(count, prefix: 7, flags: 0x80)
            HPACKHuffman.encode(text, count: count, into: &buffer)
        } else {
            buffer.writeHPACKInteger(value.count, prefix: 7, flags: 0)
            buffer.writeBytes(value)
        }
        return buffer
    }

    // MARK: - Connections

    /// One response header block, from a new encoder.
    static func block(_ fields: [(String, String)]) -> ByteBuffer {
        sequence(fields)[0]
    }

    /// Response header blocks in the order a connection sends them, from one encoder.
    static func sequence(_ blocks: [(String, String)]...) -> [ByteBuffer] {
        var encoder = ResponseEncoder(huffman: true)
        return blocks.map { encoder.block($0) }
    }

    /// The connection target's input: the first two option bytes (the third is 0), then what
    /// the server sends.
    static func connection(_ first: UInt8, _ second: UInt8 = 0, _ frames: ByteBuffer...) -> ByteBuffer {
        connection(first, second, 0, frames)
    }

    /// The connection target's input: the three option bytes, then what the server sends.
    static func connection(_ first: UInt8, _ second: UInt8, _ third: UInt8, _ frames: [ByteBuffer]) -> ByteBuffer {
        var buffer = ByteBuffer(bytes: [first, second, third])
        for frame in frames { buffer.writeImmutableBuffer(frame) }
        return buffer
    }

    static func connectionSeeds() -> [(String, ByteBuffer)] {
        // Each connection's blocks come from an encoder of its own, in the order they are sent.
        let ok = block([(":status", "200"), ("server", "nginx"), ("content-type", "text/plain")])
        let okTwice = sequence(
            [(":status", "200"), ("server", "nginx"), ("content-type", "text/plain")],
            [(":status", "200"), ("server", "nginx"), ("content-type", "text/plain")])
        let okLength5 = block([(":status", "200"), ("content-length", "5")])
        let informationalThenFinal = sequence([(":status", "103"), ("link", "</style.css>; rel=preload")], [(":status", "204")])
        let okThenTrailers = sequence([(":status", "200"), ("server", "nginx")], [("grpc-status", "0")])
        let headLength = block([(":status", "200"), ("content-length", "1234")])
        let badStatus = block([(":status", "2000")])
        let upperCase = hex("00 05 582d466f6f 01 61")
        let connectionSpecific = block([(":status", "200"), ("connection", "close")])
        let mismatch = block([(":status", "200"), ("content-length", "3")])
        let noStatus = block([("server", "nginx")])
        let serverSettings = settings([(3, 50), (4, 65_535), (5, 16_384)])
        // Options: 0x01 SETTINGS first; 0x02/0x04/0x06 one, two, three requests; 0x08 body;
        // 0x10 HEAD; 0x20 deadlines passed; 0x40 keepalive; 0x80 clock moves on.
        return [
            ("settings-only", connection(0x00, 0, serverSettings, frame(HTTP2FrameType.settings, flags: HTTP2FrameType.ack))),
            ("settings-ping", connection(0x00, 0, serverSettings, ping(77))),
            ("one-request-ok", connection(0x03, 0, headers(1, ok, endStream: true))),
            ("one-request-body", connection(0x03, 0, headers(1, okLength5), data(1, "hello", endStream: true))),
            ("one-request-split", connection(0x03, 3, headers(1, okLength5), data(1, "he"), data(1, "llo", endStream: true))),
            ("one-request-padded", connection(0x03, 0, headers(1, ok, padding: 3), data(1, "abc", padding: 200), data(1, "", endStream: true, padding: 1))),
            (
                "two-requests-interleaved",
                connection(
                    0x05, 0, headers(3, okTwice[0]), headers(1, okTwice[1]), data(3, "three"), data(1, "one", endStream: true), data(3, "", endStream: true))
            ),
            (
                "three-requests-one-per-read",
                connection(
                    0x07, 0x27, headers(1, okTwice[0], endStream: true), headers(3, okTwice[1], endStream: true), headers(5, okTwice[1], endStream: true))
            ),
            (
                "continuation",
                connection(
                    0x03, 0, headers(1, ok.getSlice(at: 0, length: 2)!, endHeaders: false),
                    frame(HTTP2FrameType.continuation, flags: HTTP2FrameType.endHeaders, stream: 1, ok.getSlice(at: 2, length: ok.readableBytes - 2)!),
                    data(1, "", endStream: true))
            ),
            ("trailers", connection(0x03, 0, headers(1, okThenTrailers[0]), data(1, "body"), headers(1, okThenTrailers[1], endStream: true))),
            ("informational-then-final", connection(0x03, 0, headers(1, informationalThenFinal[0]), headers(1, informationalThenFinal[1], endStream: true))),
            ("head-request-content-length", connection(0x13, 0, headers(1, headLength, endStream: true))),
            ("goaway-refuses-later-streams", connection(0x07, 0, headers(1, ok), goAway(last: 1, code: .noError, debug: "bye"), data(1, "x", endStream: true))),
            ("goaway-raised-is-error", connection(0x01, 0, goAway(last: 1, code: .noError), goAway(last: 3, code: .noError))),
            ("goaway-error-code", connection(0x01, 0, goAway(last: 0, code: HTTP2Code.compressionError, debug: "bad hpack"))),
            (
                "rst-stream",
                connection(0x05, 0, frame(HTTP2FrameType.rstStream, stream: 1, u32(HTTP2Code.refusedStream.rawValue)), headers(3, ok, endStream: true))
            ),
            ("rst-idle-stream", connection(0x01, 0, frame(HTTP2FrameType.rstStream, stream: 9, u32(HTTP2Code.cancel.rawValue)))),
            // Read in pieces of 1...5 bytes: the request opens right after the server's SETTINGS
            // (15 bytes), so that its body starts with a window of 0.
            (
                "body-waits-for-window",
                connection(
                    0x0A, 5, settings([(4, 0)]), windowUpdate(1, 30_000), windowUpdate(0, 100_000),
                    settings([(4, 65_535)]), headers(1, ok, endStream: true))
            ),
            ("body-window-overflow", connection(0x0B, 0, windowUpdate(1, 0x7FFF_FFFF))),
            ("connection-window-overflow", connection(0x01, 0, windowUpdate(0, 0x7FFF_FFFF))),
            ("initial-window-too-large", connection(0x01, 0, settings([(4, 0x8000_0000)]))),
            ("max-frame-size-invalid", connection(0x01, 0, settings([(5, 100)]))),
            ("max-frame-size-large-body", connection(0x0B, 0, settings([(5, 65_536)]), windowUpdate(0, 1 << 20), windowUpdate(1, 1 << 20))),
            (
                "header-table-size-changes",
                connection(
                    0x07, 0x25, settings([(1, 0)]), headers(1, okTwice[0], endStream: true),
                    settings([(1, 100)]), settings([(1, 4096)]), headers(3, okTwice[1], endStream: true))
            ),
            (
                "stream-window-exceeded",
                connection(0x03, 0, headers(1, ok), data(1, String(repeating: "z", count: 4000)), data(1, String(repeating: "z", count: 200)))
            ),
            ("data-before-headers", connection(0x03, 0, data(1, "early"))),
            ("data-after-end", connection(0x03, 0, headers(1, ok, endStream: true), data(1, "late"))),
            ("data-idle-stream", connection(0x01, 0, data(7, "who"))),
            ("headers-idle-stream", connection(0x01, 0, headers(3, ok))),
            ("content-length-mismatch", connection(0x03, 0, headers(1, mismatch), data(1, "four", endStream: true))),
            ("malformed-status", connection(0x03, 0, headers(1, badStatus, endStream: true))),
            ("missing-status", connection(0x03, 0, headers(1, noStatus, endStream: true))),
            ("uppercase-field-name", connection(0x03, 0, headers(1, hex("88") + upperCase, endStream: true))),
            ("connection-specific-field", connection(0x03, 0, headers(1, connectionSpecific, endStream: true))),
            ("bad-hpack", connection(0x03, 0, headers(1, hex("ff ff ff ff 7f"), endStream: true))),
            ("first-frame-not-settings", connection(0x02, 0, ping(1))),
            ("http1-answer", connection(0x02, 0, ByteBuffer(string: "HTTP/1.1 400 Bad Request\r\n\r\n"))),
            ("keepalive-timeout", connection(0xC3, 0, headers(1, ok))),
            ("keepalive-answered", connection(0xC1, 0, ping(1, ack: true))),
            ("deadline-passed", connection(0xA5, 0, headers(1, ok, endStream: true))),
            ("ready-timeout", connection(0x80, 0)),
            ("cancel-first", connection(0x05, 0x40, headers(1, okTwice[0]), headers(3, okTwice[1], endStream: true), data(1, "after reset"))),
            ("drain-after-first-read", connection(0x03, 0x80, headers(1, ok), data(1, "", endStream: true))),
            ("drain-with-body-pending", connection(0x8B, 0x81, settings([(4, 10)]), headers(1, ok, endStream: true))),
            ("fields-user-agent-accept", connection(0x05, 0, 0x01, [headers(1, okTwice[0], endStream: true), headers(3, okTwice[1], endStream: true)])),
            (
                "fields-never-indexed-same-path",
                connection(0x07, 0x25, 0x12, [headers(1, okTwice[0], endStream: true), headers(3, okTwice[1], endStream: true)])
            ),
            (
                "fields-large-cookie-small-table",
                connection(0x05, 0x25, 0x03, [settings([(1, 256)]), headers(1, okTwice[0], endStream: true), headers(3, okTwice[1], endStream: true)])
            ),
            ("field-needs-continuation", connection(0x03, 0, 0x04, [headers(1, ok, endStream: true)])),
            (
                "reader-opens-window",
                connection(
                    0x03, 0x1F, 0x08,
                    [
                        headers(1, ok), data(1, String(repeating: "r", count: 4000)),
                        data(1, String(repeating: "s", count: 4000)), data(1, "", endStream: true),
                    ])
            ),
            ("push-promise", connection(0x03, 0, frame(HTTP2FrameType.pushPromise, flags: HTTP2FrameType.endHeaders, stream: 1, bytes([0, 0, 0, 2, 0x88])))),
        ]
    }
}

extension ByteBuffer {
    fileprivate static func + (lhs: ByteBuffer, rhs: ByteBuffer) -> ByteBuffer {
        var joined = lhs
        joined.writeImmutableBuffer(rhs)
        return joined
    }
}
#endif
