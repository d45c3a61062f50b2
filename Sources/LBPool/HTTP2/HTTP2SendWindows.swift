import HTTPTypes
import NIOCore

/// Outbound flow control (RFC 9113 §5.2 and §6.9): how much request body the client may send
/// now, on the connection and on each stream, and the body bytes waiting for window. A value
/// type with no I/O: ``take(_:)`` hands out the DATA frames that may go out, and the connection
/// handler writes them.
struct HTTP2SendWindows {
    /// Body bytes of one stream waiting to be sent, with the promise of their write.
    struct Pending {
        var data: ByteBuffer
        var endStream: Bool
        var promise: EventLoopPromise<Void>?
        /// Request trailers, sent as HEADERS with END_STREAM once `data` is out.
        var trailers: HTTPFields?
    }

    /// A DATA frame that may be sent now. `promise` is set on the last frame of a pending chunk.
    struct Frame {
        var stream: HTTP2StreamNumber
        var data: ByteBuffer
        var endStream: Bool
        var promise: EventLoopPromise<Void>?
        /// With trailers, the frame is HEADERS carrying them (and END_STREAM), not DATA.
        var trailers: HTTPFields?
    }

    private struct Stream {
        var window: Int
        var pending = CircularBuffer<Pending>(initialCapacity: 1)
    }

    private(set) var connectionWindow = 65_535
    private(set) var initialStreamWindow = 65_535
    /// The server's SETTINGS_MAX_FRAME_SIZE.
    var maxFrameSize = 16_384
    private var streams: [HTTP2StreamNumber: Stream] = [:]
    /// Streams with pending bytes, in the order they started waiting.
    private var waiting: [HTTP2StreamNumber] = []

    /// Starts flow control for a new stream at the server's initial window.
    mutating func open(_ stream: HTTP2StreamNumber) {
        streams[stream] = Stream(window: initialStreamWindow)
    }

    /// Ends flow control for a stream; returns the promises of bytes never sent.
    mutating func close(_ stream: HTTP2StreamNumber) -> [EventLoopPromise<Void>] {
        guard let removed = streams.removeValue(forKey: stream) else { return [] }
        if !removed.pending.isEmpty { waiting.removeAll { $0 == stream } }
        return removed.pending.compactMap(\.promise)
    }

    /// Queues body bytes of a stream; ``take(_:)`` hands out what the windows allow. Returns
    /// false if the stream is not open (the caller fails the promise).
    mutating func enqueue(_ pending: Pending, on stream: HTTP2StreamNumber) -> Bool {
        guard streams[stream] != nil else { return false }
        if streams[stream]?.pending.isEmpty == true { waiting.append(stream) }
        streams[stream]?.pending.append(pending)
        return true
    }

    /// Every DATA frame the windows allow now, in the order the streams started waiting.
    mutating func take(_ emit: (Frame) -> Void) {
        guard !waiting.isEmpty else { return }
        var stillWaiting: [HTTP2StreamNumber] = []
        for id in waiting {
            guard var stream = streams[id] else { continue }
            while var first = stream.pending.first {
                let size = first.data.readableBytes
                let allowed = min(size, stream.window, connectionWindow, maxFrameSize)
                if allowed == size {
                    // The whole chunk fits (an empty chunk that ends the stream needs no window).
                    stream.pending.removeFirst()
                    stream.window -= size
                    connectionWindow -= size
                    if let trailers = first.trailers {
                        if size > 0 { emit(Frame(stream: id, data: first.data, endStream: false, promise: nil)) }
                        emit(Frame(stream: id, data: ByteBuffer(), endStream: true, promise: first.promise, trailers: trailers))
                    } else {
                        emit(Frame(stream: id, data: first.data, endStream: first.endStream, promise: first.promise))
                    }
                    continue
                }
                guard allowed > 0 else { break }
                let piece = first.data.readSlice(length: allowed) ?? ByteBuffer()
                stream.pending[stream.pending.startIndex] = first
                stream.window -= allowed
                connectionWindow -= allowed
                emit(Frame(stream: id, data: piece, endStream: false, promise: nil))
            }
            if !stream.pending.isEmpty { stillWaiting.append(id) }
            streams[id] = stream
        }
        waiting = stillWaiting
    }

    /// WINDOW_UPDATE on the connection.
    mutating func connectionWindowUpdate(_ increment: Int) throws(HTTP2ConnectionError) {
        guard increment > 0 else {
            throw HTTP2ConnectionError(code: HTTP2Code.protocolError, message: "WINDOW_UPDATE of 0 on the connection")
        }
        guard connectionWindow + increment <= http2MaxWindow else {
            throw HTTP2ConnectionError(code: HTTP2Code.flowControlError, message: "connection window above 2^31-1")
        }
        connectionWindow += increment
    }

    /// WINDOW_UPDATE on a stream: returns the code to reset the stream with when the update
    /// is invalid (RFC 9113 §6.9).
    mutating func streamWindowUpdate(_ increment: Int, on id: HTTP2StreamNumber) -> HTTP2Code? {
        guard var stream = streams[id] else { return nil }
        guard increment > 0 else { return HTTP2Code.protocolError }
        guard stream.window + increment <= http2MaxWindow else { return HTTP2Code.flowControlError }
        stream.window += increment
        streams[id] = stream
        return nil
    }

    /// SETTINGS_INITIAL_WINDOW_SIZE changed: every open stream's window moves by the difference.
    mutating func initialWindowChanged(to size: UInt32) throws(HTTP2ConnectionError) {
        guard size <= UInt32(http2MaxWindow) else {
            throw HTTP2ConnectionError(code: HTTP2Code.flowControlError, message: "SETTINGS_INITIAL_WINDOW_SIZE \(size) above 2^31-1")
        }
        let delta = Int(size) - initialStreamWindow
        initialStreamWindow = Int(size)
        guard delta != 0 else { return }
        for id in streams.keys {
            streams[id]?.window += delta
            if let window = streams[id]?.window, window > http2MaxWindow {
                throw HTTP2ConnectionError(code: HTTP2Code.flowControlError, message: "stream \(id) window above 2^31-1")
            }
        }
    }
}
