#if DEBUG
import NIOCore
import NIOHPACK
@testable import LBPool

/// Reads what the client writes on a connection, as a server would, and refuses what breaks
/// HTTP/2 (RFC 9113) or was not asked of the client: the preface and SETTINGS first; frames only
/// on streams it opened, in order; DATA only up to each request's body and never after
/// END_STREAM or RST_STREAM; no WINDOW_UPDATE of 0; and header blocks that NIOHPACK decodes to
/// the requests the harness opened. Used by the connection fuzz target.
struct ClientFrameChecker {
    /// A request the harness opened, and what of it the client has written.
    struct Request {
        var method: String
        var path: String
        var fields: [(name: String, value: String)]
        var bodyLength: Int
        var headersSent = false
        var bodySent = 0
        var ended = false
        var reset = false
    }

    private var pending = ByteBuffer()
    private var prefaceSeen = false
    private var settingsSeen = false
    private var requests: [HTTP2StreamNumber: Request] = [:]
    private var lastHeadersStream: HTTP2StreamNumber = 0
    /// A HEADERS frame without END_HEADERS: its stream, END_STREAM flag and the block so far.
    private var openBlock: (stream: HTTP2StreamNumber, endStream: Bool, block: ByteBuffer)?
    private var decoder = HPACKDecoder(
        allocator: ByteBufferAllocator(), maxDynamicTableSize: HeaderBlockEncoder.maxTableSize, maxHeaderListSize: 1 << 20)
    /// The largest SETTINGS_MAX_FRAME_SIZE the server announced.
    private var maxFrameSize = 16_384

    mutating func allowMaxFrameSize(_ size: Int) {
        guard (16_384...16_777_215).contains(size) else { return }
        maxFrameSize = max(maxFrameSize, size)
    }

    /// The harness opened a request on `stream`.
    mutating func expect(stream: HTTP2StreamNumber, method: String, path: String, fields: [(name: String, value: String)], bodyLength: Int) {
        requests[stream] = Request(method: method, path: path, fields: fields, bodyLength: bodyLength)
    }

    /// Bytes the client wrote, in order.
    mutating func check(_ bytes: ByteBuffer) throws(FuzzFinding) {
        pending.writeImmutableBuffer(bytes)
        if !prefaceSeen {
            guard pending.readableBytes >= 24 else { return }
            guard pending.readSlice(length: 24) == ByteBuffer.http2ClientPreface else {
                throw FuzzFinding("the client did not start with the connection preface")
            }
            prefaceSeen = true
        }
        while pending.readableBytes >= 9, let word = pending.getInteger(at: pending.readerIndex, as: UInt32.self) {
            let length = Int(word >> 8)
            guard pending.readableBytes >= 9 + length else { break }
            pending.moveReaderIndex(forwardBy: 3)
            let type = pending.readInteger(as: UInt8.self) ?? 0
            let flags = pending.readInteger(as: UInt8.self) ?? 0
            let rawStream = pending.readInteger(as: UInt32.self) ?? 0
            let payload = pending.readSlice(length: length) ?? ByteBuffer()
            guard rawStream & 0x8000_0000 == 0 else { throw FuzzFinding("frame type \(type) with the reserved bit set") }
            try frame(type: type, flags: flags, stream: rawStream, payload: payload)
        }
        pending.discardReadBytes()
    }

    private mutating func frame(type: UInt8, flags: UInt8, stream: HTTP2StreamNumber, payload: ByteBuffer) throws(FuzzFinding) {
        let what = "frame type \(type) flags \(flags) stream \(stream) length \(payload.readableBytes)"
        if let open = openBlock {
            guard type == HTTP2FrameType.continuation, stream == open.stream else {
                throw FuzzFinding("\(what) inside the header block of stream \(open.stream)")
            }
            var block = open.block
            block.writeImmutableBuffer(payload)
            openBlock = nil
            if flags & HTTP2FrameType.endHeaders != 0 {
                try headerBlock(block, stream: stream, endStream: open.endStream)
            } else {
                openBlock = (stream, open.endStream, block)
            }
            return
        }
        guard settingsSeen || (type == HTTP2FrameType.settings && flags & HTTP2FrameType.ack == 0) else {
            throw FuzzFinding("\(what) before the client's SETTINGS")
        }
        switch type {
        case HTTP2FrameType.data:
            guard var request = requests[stream], request.headersSent else { throw FuzzFinding("\(what): DATA on a stream without HEADERS") }
            guard !request.ended, !request.reset else { throw FuzzFinding("\(what): DATA after END_STREAM or RST_STREAM") }
            guard flags & ~HTTP2FrameType.endStream == 0 else { throw FuzzFinding("\(what): unexpected DATA flags") }
            guard payload.readableBytes <= maxFrameSize else { throw FuzzFinding("\(what): above the server's maximum frame size \(maxFrameSize)") }
            request.bodySent += payload.readableBytes
            guard request.bodySent <= request.bodyLength else {
                throw FuzzFinding("\(what): \(request.bodySent) body bytes of \(request.bodyLength)")
            }
            if flags & HTTP2FrameType.endStream != 0 {
                guard request.bodySent == request.bodyLength else {
                    throw FuzzFinding("\(what): END_STREAM after \(request.bodySent) body bytes of \(request.bodyLength)")
                }
                request.ended = true
            }
            requests[stream] = request
        case HTTP2FrameType.headers:
            guard stream % 2 == 1, stream > lastHeadersStream, let request = requests[stream] else {
                throw FuzzFinding("\(what): HEADERS on a stream the harness did not open, or out of order")
            }
            guard flags & ~(HTTP2FrameType.endStream | HTTP2FrameType.endHeaders) == 0 else { throw FuzzFinding("\(what): unexpected HEADERS flags") }
            guard payload.readableBytes <= maxFrameSize else { throw FuzzFinding("\(what): above the maximum frame size") }
            let endStream = flags & HTTP2FrameType.endStream != 0
            guard endStream == (request.bodyLength == 0) else { throw FuzzFinding("\(what): END_STREAM \(endStream) with a body of \(request.bodyLength)") }
            lastHeadersStream = stream
            if flags & HTTP2FrameType.endHeaders != 0 {
                try headerBlock(payload, stream: stream, endStream: endStream)
            } else {
                openBlock = (stream, endStream, payload)
            }
        case HTTP2FrameType.rstStream:
            guard payload.readableBytes == 4, var request = requests[stream], request.headersSent else {
                throw FuzzFinding("\(what): RST_STREAM of the wrong size or on a stream the client did not open")
            }
            guard !request.reset else { throw FuzzFinding("\(what): a second RST_STREAM on the stream") }
            request.reset = true
            requests[stream] = request
        case HTTP2FrameType.settings:
            guard stream == 0 else { throw FuzzFinding("\(what): SETTINGS on a stream") }
            if flags & HTTP2FrameType.ack != 0 {
                guard payload.readableBytes == 0 else { throw FuzzFinding("\(what): SETTINGS ACK with a payload") }
            } else {
                guard !settingsSeen, payload.readableBytes % 6 == 0 else { throw FuzzFinding("\(what): a second or malformed SETTINGS") }
                settingsSeen = true
            }
        case HTTP2FrameType.ping:
            guard stream == 0, payload.readableBytes == 8, flags & ~HTTP2FrameType.ack == 0 else { throw FuzzFinding("\(what): malformed PING") }
        case HTTP2FrameType.goAway:
            guard stream == 0, payload.readableBytes >= 8 else { throw FuzzFinding("\(what): malformed GOAWAY") }
        case HTTP2FrameType.windowUpdate:
            guard payload.readableBytes == 4, let increment = payload.getInteger(at: payload.readerIndex, as: UInt32.self) else {
                throw FuzzFinding("\(what): WINDOW_UPDATE of the wrong size")
            }
            guard increment & 0x7FFF_FFFF != 0 else { throw FuzzFinding("\(what): WINDOW_UPDATE with an increment of 0") }
            guard stream == 0 || requests[stream]?.headersSent == true else {
                throw FuzzFinding("\(what): WINDOW_UPDATE on a stream the client did not open")
            }
        default:
            throw FuzzFinding("\(what): a frame type the client has no reason to send")
        }
    }

    /// A request's whole header block: it must decode to the request the harness opened.
    private mutating func headerBlock(_ block: ByteBuffer, stream: HTTP2StreamNumber, endStream: Bool) throws(FuzzFinding) {
        guard var request = requests[stream] else { return }
        var block = block
        let fields: [(name: String, value: String)]
        do {
            fields = try decoder.decodeHeaders(from: &block).map { ($0.name, $0.value) }
        } catch {
            throw FuzzFinding("the client's header block on stream \(stream) does not decode: \(error)")
        }
        var expected = [(":method", request.method), (":scheme", "http"), (":authority", "fuzz"), (":path", request.path)]
        expected += request.fields
        if request.bodyLength > 0 { expected.append(("content-length", String(request.bodyLength))) }
        guard fields.elementsEqual(expected, by: { $0.name == $1.0 && $0.value == $1.1 }) else {
            throw FuzzFinding("the client's header block on stream \(stream) decodes to \(fields), not \(expected)")
        }
        request.headersSent = true
        request.ended = endStream
        requests[stream] = request
    }
}
#endif
