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

    private var pending: ByteBuffer?
    /// A HEADERS frame without END_HEADERS, waiting for its CONTINUATION frames.
    private var openBlock: (stream: HTTP2StreamNumber, endStream: Bool, block: ByteBuffer)?

    /// Adds bytes read from the connection.
    mutating func append(_ bytes: ByteBuffer) {
        if var pending, pending.readableBytes > 0 {
            pending.writeImmutableBuffer(bytes)
            self.pending = pending
        } else {
            pending = bytes
        }
    }

    /// The next whole frame, or `nil` until more bytes arrive.
    mutating func next() throws(HTTP2ConnectionError) -> HTTP2InboundFrame? {
        while true {
            guard var buffer = pending, buffer.readableBytes >= 9,
                  let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map({ Int($0 >> 8) })
            else { return nil }
            guard length <= Self.maxFrameSize else {
                throw HTTP2ConnectionError(code: HTTP2Code.frameSizeError, message: "frame of \(length) bytes, larger than \(Self.maxFrameSize)")
            }
            guard buffer.readableBytes >= 9 + length else { return nil }
            buffer.moveReaderIndex(forwardBy: 3)
            // Read fully above: the header and payload are there.
            let type = buffer.readInteger(as: UInt8.self) ?? 0
            let flags = buffer.readInteger(as: UInt8.self) ?? 0
            let stream = (buffer.readInteger(as: UInt32.self) ?? 0) & 0x7FFF_FFFF
            let payload = buffer.readSlice(length: length) ?? ByteBuffer()
            pending = buffer.readableBytes > 0 ? buffer : nil
            if let frame = try parse(type: type, flags: flags, stream: stream, payload: payload) {
                return frame
            }
        }
    }

    private mutating func parse(type: UInt8, flags: UInt8, stream: HTTP2StreamNumber, payload: ByteBuffer) throws(HTTP2ConnectionError) -> HTTP2InboundFrame? {
        if let open = openBlock {
            guard type == HTTP2FrameType.continuation, stream == open.stream else {
                throw HTTP2ConnectionError(code: HTTP2Code.protocolError, message: "expected CONTINUATION of stream \(open.stream), got frame type \(type) on stream \(stream)")
            }
            var block = open.block
            block.writeImmutableBuffer(payload)
            guard block.readableBytes <= Self.maxHeaderBlockSize else {
                throw HTTP2ConnectionError(code: HTTP2Code.protocolError, message: "header block larger than \(Self.maxHeaderBlockSize) bytes")
            }
            if flags & HTTP2FrameType.endHeaders != 0 {
                openBlock = nil
                return .headers(stream: stream, block: block, endStream: open.endStream)
            }
            openBlock = (stream, open.endStream, block)
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
                    throw HTTP2ConnectionError(code: HTTP2Code.frameSizeError, message: "HEADERS with priority shorter than 5 bytes")
                }
                payload.moveReaderIndex(forwardBy: 5)
            }
            let endStream = flags & HTTP2FrameType.endStream != 0
            if flags & HTTP2FrameType.endHeaders != 0 {
                return .headers(stream: stream, block: payload, endStream: endStream)
            }
            openBlock = (stream, endStream, payload)
            return nil
        case HTTP2FrameType.priority:
            try requireStream(stream, "PRIORITY")
            guard payload.readableBytes == 5 else {
                throw HTTP2ConnectionError(code: HTTP2Code.frameSizeError, message: "PRIORITY of \(payload.readableBytes) bytes")
            }
            return nil
        case HTTP2FrameType.rstStream:
            try requireStream(stream, "RST_STREAM")
            guard payload.readableBytes == 4, let code = payload.readInteger(as: UInt32.self) else {
                throw HTTP2ConnectionError(code: HTTP2Code.frameSizeError, message: "RST_STREAM of \(payload.readableBytes) bytes")
            }
            return .rstStream(stream: stream, code: HTTP2Code(code))
        case HTTP2FrameType.settings:
            try requireConnection(stream, "SETTINGS")
            if flags & HTTP2FrameType.ack != 0 {
                guard payload.readableBytes == 0 else {
                    throw HTTP2ConnectionError(code: HTTP2Code.frameSizeError, message: "SETTINGS acknowledgement with a payload")
                }
                return .settingsAck
            }
            guard payload.readableBytes % 6 == 0 else {
                throw HTTP2ConnectionError(code: HTTP2Code.frameSizeError, message: "SETTINGS of \(payload.readableBytes) bytes, not a multiple of 6")
            }
            var settings: [(identifier: UInt16, value: UInt32)] = []
            settings.reserveCapacity(payload.readableBytes / 6)
            while let identifier = payload.readInteger(as: UInt16.self), let value = payload.readInteger(as: UInt32.self) {
                settings.append((identifier, value))
            }
            return .settings(settings)
        case HTTP2FrameType.pushPromise:
            // The client sends SETTINGS_ENABLE_PUSH = 0.
            throw HTTP2ConnectionError(code: HTTP2Code.protocolError, message: "PUSH_PROMISE, though push is disabled")
        case HTTP2FrameType.ping:
            try requireConnection(stream, "PING")
            guard payload.readableBytes == 8, let opaque = payload.readInteger(as: UInt64.self) else {
                throw HTTP2ConnectionError(code: HTTP2Code.frameSizeError, message: "PING of \(payload.readableBytes) bytes")
            }
            return .ping(opaque: opaque, ack: flags & HTTP2FrameType.ack != 0)
        case HTTP2FrameType.goAway:
            try requireConnection(stream, "GOAWAY")
            guard payload.readableBytes >= 8, let last = payload.readInteger(as: UInt32.self), let code = payload.readInteger(as: UInt32.self) else {
                throw HTTP2ConnectionError(code: HTTP2Code.frameSizeError, message: "GOAWAY of \(payload.readableBytes) bytes")
            }
            return .goAway(lastStreamID: last & 0x7FFF_FFFF, code: HTTP2Code(code), debugData: payload)
        case HTTP2FrameType.windowUpdate:
            guard payload.readableBytes == 4, let increment = payload.readInteger(as: UInt32.self) else {
                throw HTTP2ConnectionError(code: HTTP2Code.frameSizeError, message: "WINDOW_UPDATE of \(payload.readableBytes) bytes")
            }
            return .windowUpdate(stream: stream, increment: increment & 0x7FFF_FFFF)
        case HTTP2FrameType.continuation:
            throw HTTP2ConnectionError(code: HTTP2Code.protocolError, message: "CONTINUATION without a HEADERS frame before it")
        default:
            // Unknown frame types are ignored (RFC 9113 §4.1).
            return nil
        }
    }

    private func requireStream(_ stream: HTTP2StreamNumber, _ type: String) throws(HTTP2ConnectionError) {
        guard stream != 0 else {
            throw HTTP2ConnectionError(code: HTTP2Code.protocolError, message: "\(type) on stream 0")
        }
    }

    private func requireConnection(_ stream: HTTP2StreamNumber, _ type: String) throws(HTTP2ConnectionError) {
        guard stream == 0 else {
            throw HTTP2ConnectionError(code: HTTP2Code.protocolError, message: "\(type) on stream \(stream)")
        }
    }

    private func removePadding(_ payload: inout ByteBuffer, flags: UInt8, type: String) throws(HTTP2ConnectionError) {
        guard flags & HTTP2FrameType.padded != 0 else { return }
        guard let padding = payload.readInteger(as: UInt8.self), Int(padding) <= payload.readableBytes else {
            throw HTTP2ConnectionError(code: HTTP2Code.protocolError, message: "\(type) padding longer than its frame")
        }
        payload.moveWriterIndex(to: payload.writerIndex - Int(padding))
    }
}
