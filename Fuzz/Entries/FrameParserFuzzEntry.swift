#if DEBUG
import NIOCore
@testable import LBPool

/// The frame parser fuzz target. Input: one byte `k`, then the bytes a server sends.
///
/// The bytes go through one ``HTTP2FrameParser`` whole, and, unless `k` is 0, through another
/// in pieces of 1, 2, …, `k`, 1, 2, … bytes, draining ``HTTP2FrameParser/next()`` after every
/// append until it returns `nil` or throws. Besides not crashing, the parser must:
/// - return the same frames, and fail at the same point with the same code, however the bytes
///   are cut (a stream of bytes has one meaning);
/// - hand out only frames within the limits it enforces (frame and header-block sizes, stream
///   ids where the type fixes them, 31-bit fields) and only the error codes it documents.
enum FrameParserFuzzEntry {
    static func run(_ input: UnsafeRawBufferPointer) throws(FuzzFinding) {
        guard let cut = input.first else { return }
        let bytes = ByteBuffer(bytes: input.dropFirst())
        let whole = try parse(bytes, pieces: 0)
        guard cut != 0 else { return }
        let pieces = try parse(bytes, pieces: Int(cut))
        guard pieces == whole else {
            throw FuzzFinding("cutting the input into pieces of 1...\(cut) bytes changed the result:\nwhole:  \(whole)\npieces: \(pieces)")
        }
    }

    /// What one parser made of the bytes.
    struct Outcome: Equatable, CustomStringConvertible {
        var frames: [Frame] = []
        /// The code of the connection error that stopped it, if one did.
        var error: HTTP2Code?

        var description: String { "\(frames.count) frames \(frames), error \(error.map { $0.description } ?? "none")" }
    }

    /// A frame as compared between the two parsers.
    struct Frame: Equatable {
        var kind: String
        var stream: UInt32 = 0
        var numbers: [UInt64] = []
        var payload = ByteBuffer()
    }

    /// Parses `bytes`, whole when `pieces` is 0, else appended in pieces of 1...`pieces` bytes.
    static func parse(_ bytes: ByteBuffer, pieces: Int) throws(FuzzFinding) -> Outcome {
        var parser = HTTP2FrameParser()
        var outcome = Outcome()
        var rest = bytes
        var nextLength = 1
        repeat {
            let length = pieces == 0 ? rest.readableBytes : min(nextLength, rest.readableBytes)
            nextLength = nextLength % max(pieces, 1) + 1
            parser.append(rest.readSlice(length: length) ?? ByteBuffer())
            do {
                while let frame = try parser.next() {
                    outcome.frames.append(try check(frame))
                }
            } catch let error as HTTP2ConnectionError {
                guard [HTTP2Code.protocolError, .frameSizeError, .enhanceYourCalm].contains(error.code) else {
                    throw FuzzFinding("connection error with an unexpected code: \(error)")
                }
                outcome.error = error.code
                return outcome
            } catch let finding as FuzzFinding {
                throw finding
            } catch {
                throw FuzzFinding("unexpected error \(error)")
            }
        } while rest.readableBytes > 0
        return outcome
    }

    /// Checks one frame against the limits the parser promises; returns it for comparison.
    static func check(_ frame: HTTP2InboundFrame) throws(FuzzFinding) -> Frame {
        switch frame {
        case .data(let stream, let data, let endStream, let flowControlledLength):
            guard stream != 0, stream <= 0x7FFF_FFFF, data.readableBytes <= flowControlledLength,
                flowControlledLength <= HTTP2FrameParser.maxFrameSize
            else { throw FuzzFinding("DATA out of bounds: stream \(stream), \(data.readableBytes) of \(flowControlledLength) bytes") }
            return Frame(kind: "DATA", stream: stream, numbers: [endStream ? 1 : 0, UInt64(flowControlledLength)], payload: data)
        case .headers(let stream, let block, let endStream):
            guard stream != 0, stream <= 0x7FFF_FFFF, block.readableBytes <= HTTP2FrameParser.maxHeaderBlockSize
            else { throw FuzzFinding("HEADERS out of bounds: stream \(stream), block of \(block.readableBytes) bytes") }
            return Frame(kind: "HEADERS", stream: stream, numbers: [endStream ? 1 : 0], payload: block)
        case .rstStream(let stream, let code):
            guard stream != 0, stream <= 0x7FFF_FFFF else { throw FuzzFinding("RST_STREAM on stream \(stream)") }
            return Frame(kind: "RST_STREAM", stream: stream, numbers: [UInt64(code.rawValue)])
        case .settings(let settings):
            return Frame(kind: "SETTINGS", numbers: settings.map { UInt64($0.identifier) << 32 | UInt64($0.value) })
        case .settingsAck:
            return Frame(kind: "SETTINGS_ACK")
        case .ping(let opaque, let ack):
            return Frame(kind: "PING", numbers: [opaque, ack ? 1 : 0])
        case .goAway(let lastStreamID, let code, let debugData):
            guard lastStreamID <= 0x7FFF_FFFF else { throw FuzzFinding("GOAWAY with last stream id \(lastStreamID)") }
            return Frame(kind: "GOAWAY", numbers: [UInt64(lastStreamID), UInt64(code.rawValue)], payload: debugData)
        case .windowUpdate(let stream, let increment):
            guard stream <= 0x7FFF_FFFF, increment <= 0x7FFF_FFFF
            else { throw FuzzFinding("WINDOW_UPDATE out of bounds: stream \(stream), increment \(increment)") }
            return Frame(kind: "WINDOW_UPDATE", stream: stream, numbers: [UInt64(increment)])
        }
    }
}
#endif
