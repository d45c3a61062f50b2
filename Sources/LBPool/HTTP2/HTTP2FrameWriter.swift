import NIOCore

/// Writing HTTP/2 frames (RFC 9113 §6) into a buffer of outbound bytes.
extension ByteBuffer {
    /// The client connection preface (RFC 9113 §3.4).
    static let http2ClientPreface = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

    mutating func writeHTTP2FrameHeader(length: Int, type: UInt8, flags: UInt8, stream: HTTP2StreamNumber) {
        writeInteger(UInt32(length) << 8 | UInt32(type))
        writeInteger(flags)
        writeInteger(stream)
    }

    mutating func writeHTTP2Settings(_ settings: [(identifier: UInt16, value: UInt32)]) {
        writeHTTP2FrameHeader(length: settings.count * 6, type: HTTP2FrameType.settings, flags: 0, stream: 0)
        for setting in settings {
            writeInteger(setting.identifier)
            writeInteger(setting.value)
        }
    }

    mutating func writeHTTP2SettingsAck() {
        writeHTTP2FrameHeader(length: 0, type: HTTP2FrameType.settings, flags: HTTP2FrameType.ack, stream: 0)
    }

    mutating func writeHTTP2WindowUpdate(stream: HTTP2StreamNumber, increment: Int) {
        writeHTTP2FrameHeader(length: 4, type: HTTP2FrameType.windowUpdate, flags: 0, stream: stream)
        writeInteger(UInt32(increment))
    }

    mutating func writeHTTP2RstStream(stream: HTTP2StreamNumber, code: HTTP2Code) {
        writeHTTP2FrameHeader(length: 4, type: HTTP2FrameType.rstStream, flags: 0, stream: stream)
        writeInteger(code.rawValue)
    }

    mutating func writeHTTP2Ping(opaque: UInt64, ack: Bool) {
        writeHTTP2FrameHeader(length: 8, type: HTTP2FrameType.ping, flags: ack ? HTTP2FrameType.ack : 0, stream: 0)
        writeInteger(opaque)
    }

    mutating func writeHTTP2GoAway(lastStreamID: HTTP2StreamNumber, code: HTTP2Code, debugData: String) {
        let debug = debugData.utf8.prefix(256)
        writeHTTP2FrameHeader(length: 8 + debug.count, type: HTTP2FrameType.goAway, flags: 0, stream: 0)
        writeInteger(lastStreamID)
        writeInteger(code.rawValue)
        writeBytes(debug)
    }

    /// Writes a HEADERS frame whose block `encode` appends to this buffer, followed by
    /// CONTINUATION frames when the block is larger than `maxFrameSize`.
    mutating func writeHTTP2Headers<Failure: Error>(
        stream: HTTP2StreamNumber,
        endStream: Bool,
        maxFrameSize: Int,
        encode: (inout ByteBuffer) throws(Failure) -> Void
    ) throws(Failure) {
        let headerIndex = writerIndex
        writeHTTP2FrameHeader(length: 0, type: HTTP2FrameType.headers, flags: 0, stream: stream)
        let blockStart = writerIndex
        do {
            try encode(&self)
        } catch {
            moveWriterIndex(to: headerIndex)
            throw error
        }
        let blockLength = writerIndex - blockStart
        let streamFlag = endStream ? HTTP2FrameType.endStream : 0
        if blockLength <= maxFrameSize {
            setInteger(UInt32(blockLength) << 8 | UInt32(HTTP2FrameType.headers), at: headerIndex)
            setInteger(streamFlag | HTTP2FrameType.endHeaders, at: headerIndex + 4)
            return
        }
        // Rare: a header block larger than a frame. Cut it into HEADERS + CONTINUATION.
        // The slice shares storage with this buffer: the writes below copy it on write.
        var block = getSlice(at: blockStart, length: blockLength) ?? ByteBuffer()
        moveWriterIndex(to: headerIndex)
        var first = true
        while block.readableBytes > 0 {
            let length = Swift.min(block.readableBytes, maxFrameSize)
            let last = length == block.readableBytes
            let type = first ? HTTP2FrameType.headers : HTTP2FrameType.continuation
            let flags = (first ? streamFlag : 0) | (last ? HTTP2FrameType.endHeaders : 0)
            writeHTTP2FrameHeader(length: length, type: type, flags: flags, stream: stream)
            var piece = block.readSlice(length: length) ?? ByteBuffer()
            writeBuffer(&piece)
            first = false
        }
    }
}
