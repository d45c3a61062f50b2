import NIOCore

/// Cuts the bytes a server sends into HTTP/2 frames (RFC 9113 §4 and §6). A value type with no
/// I/O: bytes go in with ``append(_:)``, frames come out of ``next()``. It checks what can be
/// checked per frame (sizes, stream ids where the type fixes them, CONTINUATION order, padding)
/// and throws ``HTTP2ConnectionError`` for a connection error; what depends on stream state is
/// the connection handler's to judge.
struct HTTP2FrameParser {
    /// The largest frame payload the client accepts: SETTINGS_MAX_FRAME_SIZE, which the client
    /// leaves at its initial value.
    static let maxFrameSize = 16_384
    /// The largest header block the client joins from HEADERS and CONTINUATION frames.
    static let maxHeaderBlockSize = 256 * 1024

    /// CONTINUATION frames one header block may use (empty ones included): past this, the
    /// block is a flood (RFC 9113 §10.5) and the connection closes with ENHANCE_YOUR_CALM.
    let maxContinuationFrames: Int

    /// Unread bytes of the last read, starting at a frame boundary. Frames are cut from it as
    /// slices, so their payloads share its storage and are never copied.
    private var pending: ByteBuffer?
    /// A frame that began in an earlier read and is not whole yet. Only such a frame is copied,
    /// once, into storage of its own; so every byte read is copied at most once, however many
    /// bytes are buffered.
    private var carry: ByteBuffer?
    /// A HEADERS frame without END_HEADERS, waiting for its CONTINUATION frames.
    private var openBlock: (stream: HTTP2StreamNumber, endStream: Bool, block: ByteBuffer, continuations: Int)?
    /// Frames read and dropped (PRIORITY, unknown types, empty CONTINUATION) since
    /// ``takeIgnoredFrames()``: harmless alone, a flood in numbers.
    private var ignoredFrames = 0

    init(maxContinuationFrames: Int = 32) {
        self.maxContinuationFrames = maxContinuationFrames
    }

    /// Adds bytes read from the connection.
    mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        if var carry {
            // Completes the frame begun in the last read, taking only its own bytes.
            self.carry = nil
            while bytes.readableBytes > 0 {
                let size = Self.frameSize(carry)
                // An oversized frame is refused by `next()`; none of it is buffered.
                guard size <= 9 + Self.maxFrameSize else { break }
                let needed = size - carry.readableBytes
                guard needed > 0 else { break }
                var piece = bytes.readSlice(length: min(needed, bytes.readableBytes)) ?? ByteBuffer()
                carry.writeBuffer(&piece)
            }
            self.carry = carry
        }
        if var pending, pending.readableBytes > 0 {
            // Only when a caller appends twice without draining: rare, and bounded by its reads.
            pending.writeBuffer(&bytes)
            self.pending = pending
        } else {
            pending = bytes.readableBytes > 0 ? bytes : nil
        }
    }

    /// The bytes a frame whose first bytes are in `buffer` takes, header included; 9 while its
    /// header is incomplete.
    private static func frameSize(_ buffer: ByteBuffer) -> Int {
        guard buffer.readableBytes >= 9, let word = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return 9 }
        return 9 + Int(word >> 8)
    }

    /// How many dropped frames were read since the last call.
    mutating func takeIgnoredFrames() -> Int {
        defer { ignoredFrames = 0 }
        return ignoredFrames
    }

    /// The next whole frame, or `nil` until more bytes arrive.
    mutating func next() throws(HTTP2ConnectionError) -> HTTP2InboundFrame? {
        while true {
            var buffer: ByteBuffer
            let fromCarry: Bool
            if let carry {
                buffer = carry
                fromCarry = true
            } else if let pending {
                buffer = pending
                fromCarry = false
            } else {
                return nil
            }
            if buffer.readableBytes >= 9, let word = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) {
                let length = Int(word >> 8)
                guard length <= Self.maxFrameSize else {
                    throw HTTP2ConnectionError(code: .frameSizeError, message: "frame of \(length) bytes, larger than \(Self.maxFrameSize)")
                }
            }
            let size = Self.frameSize(buffer)
            guard buffer.readableBytes >= size else {
                if !fromCarry {
                    // The frame goes on in the next read: keep just its bytes.
                    pending = nil
                    var own = ByteBufferAllocator().buffer(capacity: size)
                    own.writeBuffer(&buffer)
                    carry = own
                }
                return nil
            }
            buffer.moveReaderIndex(forwardBy: 3)
            // Read fully above: the header and payload are there.
            let type = buffer.readInteger(as: UInt8.self) ?? 0
            let flags = buffer.readInteger(as: UInt8.self) ?? 0
            let stream = (buffer.readInteger(as: UInt32.self) ?? 0) & 0x7FFF_FFFF
            let payload = buffer.readSlice(length: size - 9) ?? ByteBuffer()
            if fromCarry {
                carry = nil
            } else {
                pending = buffer.readableBytes > 0 ? buffer : nil
            }
            if let frame = try parse(type: type, flags: flags, stream: stream, payload: payload) {
                return frame
            }
        }
    }

    private mutating func parse(type: UInt8, flags: UInt8, stream: HTTP2StreamNumber, payload: ByteBuffer) throws(HTTP2ConnectionError) -> HTTP2InboundFrame? {
        if let open = openBlock {
            guard type == HTTP2FrameType.continuation, stream == open.stream else {
                throw HTTP2ConnectionError(
                    code: .protocolError, message: "expected CONTINUATION of stream \(open.stream), got frame type \(type) on stream \(stream)")
            }
            let continuations = open.continuations + 1
            guard continuations <= maxContinuationFrames else {
                throw HTTP2ConnectionError(
                    code: .enhanceYourCalm, message: "header block of stream \(stream) in more than \(maxContinuationFrames) CONTINUATION frames")
            }
            var block = open.block
            if payload.readableBytes == 0 {
                ignoredFrames += 1
            } else {
                block.writeImmutableBuffer(payload)
            }
            guard block.readableBytes <= Self.maxHeaderBlockSize else {
                throw HTTP2ConnectionError(code: .protocolError, message: "header block larger than \(Self.maxHeaderBlockSize) bytes")
            }
            if flags & HTTP2FrameType.endHeaders != 0 {
                openBlock = nil
                return .headers(stream: stream, block: block, endStream: open.endStream)
            }
            openBlock = (stream, open.endStream, block, continuations)
            return nil
        }
        var payload = payload
        switch type {
        case HTTP2FrameType.data:
            try requireStream(stream, "DATA")
            let length = payload.readableBytes
            try removePadding(&payload, flags: flags, type: "DATA")
            return .data(stream: stream, data: payload, endStream: flags & HTTP2FrameType.endStream != 0, flowControlledLength: length)
        case HTTP2FrameType.headers:
            try requireStream(stream, "HEADERS")
            try removePadding(&payload, flags: flags, type: "HEADERS")
            if flags & HTTP2FrameType.priorityFlag != 0 {
                guard payload.readableBytes >= 5 else {
                    throw HTTP2ConnectionError(code: .frameSizeError, message: "HEADERS with priority shorter than 5 bytes")
                }
                payload.moveReaderIndex(forwardBy: 5)
            }
            let endStream = flags & HTTP2FrameType.endStream != 0
            if flags & HTTP2FrameType.endHeaders != 0 {
                return .headers(stream: stream, block: payload, endStream: endStream)
            }
            openBlock = (stream, endStream, payload, 0)
            return nil
        case HTTP2FrameType.priority:
            try requireStream(stream, "PRIORITY")
            guard payload.readableBytes == 5 else {
                throw HTTP2ConnectionError(code: .frameSizeError, message: "PRIORITY of \(payload.readableBytes) bytes")
            }
            ignoredFrames += 1
            return nil
        case HTTP2FrameType.rstStream:
            try requireStream(stream, "RST_STREAM")
            guard payload.readableBytes == 4, let code = payload.readInteger(as: UInt32.self) else {
                throw HTTP2ConnectionError(code: .frameSizeError, message: "RST_STREAM of \(payload.readableBytes) bytes")
            }
            return .rstStream(stream: stream, code: HTTP2Code(code))
        case HTTP2FrameType.settings:
            try requireConnection(stream, "SETTINGS")
            if flags & HTTP2FrameType.ack != 0 {
                guard payload.readableBytes == 0 else {
                    throw HTTP2ConnectionError(code: .frameSizeError, message: "SETTINGS acknowledgement with a payload")
                }
                return .settingsAck
            }
            guard payload.readableBytes % 6 == 0 else {
                throw HTTP2ConnectionError(code: .frameSizeError, message: "SETTINGS of \(payload.readableBytes) bytes, not a multiple of 6")
            }
            var settings: [(identifier: UInt16, value: UInt32)] = []
            settings.reserveCapacity(payload.readableBytes / 6)
            while let identifier = payload.readInteger(as: UInt16.self), let value = payload.readInteger(as: UInt32.self) {
                settings.append((identifier, value))
            }
            return .settings(settings)
        case HTTP2FrameType.pushPromise:
            // The client sends SETTINGS_ENABLE_PUSH = 0.
            throw HTTP2ConnectionError(code: .protocolError, message: "PUSH_PROMISE, though push is disabled")
        case HTTP2FrameType.ping:
            try requireConnection(stream, "PING")
            guard payload.readableBytes == 8, let opaque = payload.readInteger(as: UInt64.self) else {
                throw HTTP2ConnectionError(code: .frameSizeError, message: "PING of \(payload.readableBytes) bytes")
            }
            return .ping(opaque: opaque, ack: flags & HTTP2FrameType.ack != 0)
        case HTTP2FrameType.goAway:
            try requireConnection(stream, "GOAWAY")
            guard payload.readableBytes >= 8, let last = payload.readInteger(as: UInt32.self), let code = payload.readInteger(as: UInt32.self) else {
                throw HTTP2ConnectionError(code: .frameSizeError, message: "GOAWAY of \(payload.readableBytes) bytes")
            }
            return .goAway(lastStreamID: last & 0x7FFF_FFFF, code: HTTP2Code(code), debugData: payload)
        case HTTP2FrameType.windowUpdate:
            guard payload.readableBytes == 4, let increment = payload.readInteger(as: UInt32.self) else {
                throw HTTP2ConnectionError(code: .frameSizeError, message: "WINDOW_UPDATE of \(payload.readableBytes) bytes")
            }
            return .windowUpdate(stream: stream, increment: increment & 0x7FFF_FFFF)
        case HTTP2FrameType.continuation:
            throw HTTP2ConnectionError(code: .protocolError, message: "CONTINUATION without a HEADERS frame before it")
        default:
            // Unknown frame types are ignored (RFC 9113 §4.1).
            ignoredFrames += 1
            return nil
        }
    }

    private func requireStream(_ stream: HTTP2StreamNumber, _ type: String) throws(HTTP2ConnectionError) {
        guard stream != 0 else {
            throw HTTP2ConnectionError(code: .protocolError, message: "\(type) on stream 0")
        }
    }

    private func requireConnection(_ stream: HTTP2StreamNumber, _ type: String) throws(HTTP2ConnectionError) {
        guard stream == 0 else {
            throw HTTP2ConnectionError(code: .protocolError, message: "\(type) on stream \(stream)")
        }
    }

    private func removePadding(_ payload: inout ByteBuffer, flags: UInt8, type: String) throws(HTTP2ConnectionError) {
        guard flags & HTTP2FrameType.padded != 0 else { return }
        guard let padding = payload.readInteger(as: UInt8.self), Int(padding) <= payload.readableBytes else {
            throw HTTP2ConnectionError(code: .protocolError, message: "\(type) padding longer than its frame")
        }
        payload.moveWriterIndex(to: payload.writerIndex - Int(padding))
    }
}
