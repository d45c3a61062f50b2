import NIOCore

/// The client's HPACK decoder (RFC 7541): one per connection, reading the header blocks of
/// responses. A value type with no I/O. Every block must be decoded, in order, even of a stream
/// already gone: the dynamic table is the connection's.
struct HeaderBlockDecoder {
    /// The dynamic table size the client allows: SETTINGS_HEADER_TABLE_SIZE, left at its
    /// initial value.
    static let maxTableSize = 4096

    private var table = HPACKDynamicTable(maxSize: HeaderBlockDecoder.maxTableSize)
    /// Huffman-coded literals decoded lately. Servers send some values as literals in every
    /// response (nginx: `server`, `date`, `content-type`, `content-length`), so most repeat.
    private var recentLiterals: [(coded: [UInt8], text: String, octets: Int)] = []
    private var nextLiteralSlot = 0
    private static let recentLiteralCount = 8
    private static let maxCachedLiteral = 64

    /// A block that cannot be decoded: a connection error of type COMPRESSION_ERROR.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Decodes `block` and hands each field to `field`, in order.
    mutating func decode(_ block: ByteBuffer, _ field: (_ name: String, _ value: String) -> Void) throws(Failure) {
        try block.withUnsafeReadableBytes { (bytes: UnsafeRawBufferPointer) throws(Failure) in
            var reader = Reader(bytes: bytes)
            var fieldsSeen = false
            while !reader.atEnd {
                let first = reader.peek
                if first & 0x80 != 0 {
                    // Indexed field (§6.1).
                    let index = try reader.integer(prefix: 7)
                    let entry = try self.entry(at: index)
                    field(entry.name.text, entry.value)
                } else if first & 0xC0 == 0x40 {
                    // Literal with incremental indexing (§6.2.1).
                    let (name, value) = try literal(&reader, prefix: 6)
                    table.insert(name: name.text, value: value.text, nameOctets: name.octets, valueOctets: value.octets)
                    field(name.text, value.text)
                } else if first & 0xE0 == 0x20 {
                    // Dynamic table size update (§6.3): only before the first field.
                    let size = try reader.integer(prefix: 5)
                    guard !fieldsSeen else { throw Failure(description: "dynamic table size update after a header field") }
                    guard size <= Self.maxTableSize else {
                        throw Failure(description: "dynamic table size \(size) above the \(Self.maxTableSize) allowed")
                    }
                    table.resize(to: size)
                    continue
                } else {
                    // Literal without indexing or never indexed (§6.2.2, §6.2.3).
                    let (name, value) = try literal(&reader, prefix: 4)
                    field(name.text, value.text)
                }
                fieldsSeen = true
            }
        }
    }

    /// A decoded string with the number of octets it had on the wire (before Huffman coding was
    /// undone and before any non-UTF-8 byte was replaced).
    typealias Literal = (text: String, octets: Int)

    private func entry(at index: Int) throws(Failure) -> (name: Literal, value: String) {
        if index >= 1, index <= HPACKStaticTable.entries.count {
            let entry = HPACKStaticTable.entries[index - 1]
            return ((entry.name, entry.name.utf8.count), entry.value)
        }
        guard let entry = table.entry(at: index) else {
            throw Failure(description: "header table index \(index) out of range")
        }
        return ((entry.name, entry.nameOctets), entry.value)
    }

    private mutating func literal(_ reader: inout Reader, prefix: Int) throws(Failure) -> (name: Literal, value: Literal) {
        let nameIndex = try reader.integer(prefix: prefix)
        let name = nameIndex == 0 ? try string(&reader) : try entry(at: nameIndex).name
        return (name, try string(&reader))
    }

    private mutating func string(_ reader: inout Reader) throws(Failure) -> Literal {
        let (raw, huffman) = try reader.string()
        guard huffman else { return (String(decoding: raw, as: UTF8.self), raw.count) }
        for entry in recentLiterals where entry.coded.count == raw.count {
            if entry.coded.elementsEqual(raw) { return (entry.text, entry.octets) }
        }
        guard let (text, octets) = HPACKHuffman.decode(raw) else {
            throw Failure(description: "invalid Huffman code in header block")
        }
        if raw.count <= Self.maxCachedLiteral {
            let entry = (coded: Array(raw), text: text, octets: octets)
            if recentLiterals.count < Self.recentLiteralCount {
                recentLiterals.append(entry)
            } else {
                recentLiterals[nextLiteralSlot] = entry
                nextLiteralSlot = (nextLiteralSlot + 1) % Self.recentLiteralCount
            }
        }
        return (text, octets)
    }

    /// Reads the primitives of a header block (RFC 7541 §5).
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        var atEnd: Bool { position >= bytes.count }
        var peek: UInt8 { bytes[position] }

        mutating func integer(prefix: Int) throws(Failure) -> Int {
            guard position < bytes.count else { throw Failure(description: "header block ends inside an integer") }
            let limit = (1 << prefix) - 1
            var value = Int(bytes[position]) & limit
            position += 1
            guard value == limit else { return value }
            var shift = 0
            while true {
                guard position < bytes.count else { throw Failure(description: "header block ends inside an integer") }
                let byte = bytes[position]
                position += 1
                value += Int(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
                // Four continuation bytes reach 2^28: more than any length or index here.
                guard shift <= 21 else { throw Failure(description: "integer too large in header block") }
            }
        }

        /// A string literal's bytes, and whether they are Huffman-coded.
        mutating func string() throws(Failure) -> (UnsafeRawBufferPointer, huffman: Bool) {
            guard position < bytes.count else { throw Failure(description: "header block ends before a string") }
            let huffman = bytes[position] & 0x80 != 0
            let length = try integer(prefix: 7)
            guard length <= bytes.count - position else {
                throw Failure(description: "string of \(length) bytes past the end of the header block")
            }
            let raw = UnsafeRawBufferPointer(rebasing: bytes[position..<(position + length)])
            position += length
            return (raw, huffman)
        }
    }
}
