#if DEBUG
import NIOCore
import NIOHPACK
@testable import LBPool

/// The HPACK decoder fuzz target. Input: header blocks, each after its length: one byte
/// `0lllllll`, or two bytes `1lllllll llllllll` for up to 32767; a length past the end takes
/// what is left.
///
/// The blocks go in order through one ``HeaderBlockDecoder``, as the blocks of one connection
/// do, so entries added to the dynamic table, evictions and table size updates carry over from
/// block to block. Each block also goes through NIOHPACK's decoder, as an independent reading of
/// RFC 7541; until the first block either refuses (a COMPRESSION_ERROR ends the connection):
/// - when both decode a block, the fields must be the same, in the same order;
/// - when only NIOHPACK decodes it, the client refused a valid block, unless it is an integer
///   above the client's documented 2^28 limit;
/// - when only the client decodes it, NIOHPACK must have refused it for one of the rules it
///   alone enforces (an empty literal name, more than two size updates in a row).
///
/// Comparing stops at a block with octets that are not UTF-8 (a decoded U+FFFD): NIOHPACK counts
/// such an entry by its repaired text, which is longer, where RFC 7541 §4.1 and the client count
/// the octets, so from there the two tables evict differently (`HPACKDecoderTests` checks the
/// client's count).
enum HPACKDecoderFuzzEntry {
    static func run(_ input: UnsafeRawBufferPointer) throws(FuzzFinding) {
        var decoder = HeaderBlockDecoder()
        var reference = HPACKDecoder(
            allocator: ByteBufferAllocator(), maxDynamicTableSize: HeaderBlockDecoder.maxTableSize, maxHeaderListSize: 1 << 30)
        var position = 0
        var index = 0
        while position < input.count {
            var length = Int(input[position])
            position += 1
            if length & 0x80 != 0, position < input.count {
                length = (length & 0x7F) << 8 | Int(input[position])
                position += 1
            }
            length = min(length, input.count - position)
            let block = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: input[position..<(position + length)]))
            position += length
            guard try compare(block, index: index, &decoder, &reference) else { return }
            index += 1
        }
    }

    /// Decodes one block both ways and compares; returns whether both decoded it.
    static func compare(_ block: ByteBuffer, index: Int, _ decoder: inout HeaderBlockDecoder, _ reference: inout HPACKDecoder) throws(FuzzFinding) -> Bool {
        var fields: [(name: String, value: String)] = []
        let failure: HeaderBlockDecoder.Failure?
        do {
            try decoder.decode(block) { fields.append(($0, $1)) }
            failure = nil
        } catch {
            failure = error
        }
        var referenceBlock = block
        let expected: Result<[(name: String, value: String)], any Error> = Result {
            try reference.decodeHeaders(from: &referenceBlock).map { ($0.name, $0.value) }
        }
        if failure == nil, fields.contains(where: { $0.name.contains("\u{FFFD}") || $0.value.contains("\u{FFFD}") }) {
            return false
        }
        switch (failure, expected) {
        case (nil, .success(let expected)):
            guard fields.elementsEqual(expected, by: { $0.name == $1.name && $0.value == $1.value }) else {
                throw FuzzFinding("block \(index) \(hex(block)) decoded to \(fields), NIOHPACK decoded \(expected)")
            }
            return true
        case (let failure?, .success(let expected)):
            if failure.description.contains("integer too large") { return false }
            throw FuzzFinding("block \(index) \(hex(block)) refused (\(failure)), NIOHPACK decoded \(expected)")
        case (nil, .failure(let error)):
            if error is NIOHPACKErrors.EmptyLiteralHeaderFieldName || error is NIOHPACKErrors.IllegalDynamicTableSizeChange {
                return false
            }
            throw FuzzFinding("block \(index) \(hex(block)) decoded to \(fields), NIOHPACK refused it: \(error)")
        case (.some, .failure):
            return false
        }
    }

    static func hex(_ buffer: ByteBuffer) -> String {
        buffer.readableBytesView.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}
#endif
