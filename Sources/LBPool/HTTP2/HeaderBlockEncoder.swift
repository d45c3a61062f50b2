import HTTPTypes
import NIOCore

/// How a header field may be kept in HPACK's dynamic table (RFC 7541 §6.2).
enum HPACKIndexing: Sendable {
    /// Added to the dynamic table, so a repeat costs one byte.
    case indexed
    /// Sent as a literal and not added (values that change with every request).
    case notIndexed
    /// Sent as a literal that no intermediary may index either (secrets).
    case neverIndexed
}

/// The client's HPACK encoder (RFC 7541): one per connection, writing request header blocks
/// straight into the connection's output buffer. A value type with no I/O.
///
/// Fields found whole in the static or dynamic table take one indexed byte or two; others are
/// literals, with an indexed name where one exists, Huffman-coded when that is shorter, and
/// added to the dynamic table unless their ``HPACKIndexing`` says not to.
struct HeaderBlockEncoder {
    /// The dynamic table size the client uses at most, whatever larger size a server allows.
    static let maxTableSize = 4096

    private var table = HPACKDynamicTable(maxSize: HeaderBlockEncoder.maxTableSize)
    var maxSize: Int { table.maxSize }
    /// Size updates owed at the start of the next block: the smallest since the last block, and
    /// the final one (RFC 7541 §4.2).
    private var pendingUpdate: (smallest: Int, final: Int)?
    /// The pseudo-headers of the last request whose pseudo-headers were all found in the
    /// tables, with their bytes: while the dynamic table does not change, the same values
    /// encode to the same indices.
    private var lastPseudoHeaders: (method: String, scheme: String, authority: String, path: String, tableGeneration: Int, bytes: [UInt8])?

    /// The server's SETTINGS_HEADER_TABLE_SIZE: the table may be at most this large.
    mutating func setMaxSize(_ allowed: Int) {
        let newSize = min(allowed, Self.maxTableSize)
        guard newSize != maxSize || pendingUpdate != nil else { return }
        pendingUpdate = (min(pendingUpdate?.smallest ?? newSize, newSize), newSize)
        table.resize(to: newSize)
    }

    /// Writes the header block of `head`.
    mutating func encode(_ head: RequestHead, into buffer: inout ByteBuffer) {
        writePendingUpdate(into: &buffer)
        encodePseudoHeaders(head, into: &buffer)
        head.forEachRegularField { name, value, indexing in
            append(name: name, value: value, indexing: indexing, into: &buffer)
        }
    }

    /// Writes the header block of request trailers: regular fields only, without the
    /// connection-specific ones (RFC 9113 §8.1).
    mutating func encode(trailers: HTTPFields, into buffer: inout ByteBuffer) {
        writePendingUpdate(into: &buffer)
        for field in trailers {
            let name = field.name.canonicalName
            if isHTTP2ConnectionSpecific(name) || name == "te" || name == "host" { continue }
            append(name: name, value: field.value, indexing: RequestHead.indexing(field.indexingStrategy), into: &buffer)
        }
    }

    private mutating func writePendingUpdate(into buffer: inout ByteBuffer) {
        guard let update = pendingUpdate else { return }
        if update.smallest < update.final { buffer.writeHPACKInteger(update.smallest, prefix: 5, flags: 0x20) }
        buffer.writeHPACKInteger(update.final, prefix: 5, flags: 0x20)
        pendingUpdate = nil
    }

    private mutating func encodePseudoHeaders(_ head: RequestHead, into buffer: inout ByteBuffer) {
        if let last = lastPseudoHeaders, last.tableGeneration == table.generation, last.method == head.method,
            last.path == head.path, last.authority == head.authority, last.scheme == head.scheme
        {
            buffer.writeBytes(last.bytes)
            return
        }
        let start = buffer.writerIndex
        let generation = table.generation
        head.forEachPseudoHeader { name, value in append(name: name, value: value, indexing: .indexed, into: &buffer) }
        // Kept only when nothing was added to the table: then the bytes are indices alone.
        if table.generation == generation, let bytes = buffer.getBytes(at: start, length: buffer.writerIndex - start) {
            lastPseudoHeaders = (head.method, head.scheme, head.authority, head.path, generation, bytes)
        } else {
            lastPseudoHeaders = nil
        }
    }

    mutating func append(name: String, value: String, indexing: HPACKIndexing, into buffer: inout ByteBuffer) {
        let staticEntry = HPACKStaticTable.entry(named: name)
        if indexing != .neverIndexed {
            if let index = staticEntry?.index(of: value) ?? table.index(name: name, value: value) {
                buffer.writeHPACKInteger(index, prefix: 7, flags: 0x80)
                return
            }
        }
        let nameIndex = staticEntry?.nameIndex ?? table.index(name: name, value: nil) ?? 0
        switch indexing {
        case .indexed: buffer.writeHPACKInteger(nameIndex, prefix: 6, flags: 0x40)
        case .notIndexed: buffer.writeHPACKInteger(nameIndex, prefix: 4, flags: 0x00)
        case .neverIndexed: buffer.writeHPACKInteger(nameIndex, prefix: 4, flags: 0x10)
        }
        if nameIndex == 0 { buffer.writeHPACKString(name) }
        buffer.writeHPACKString(value)
        if indexing == .indexed { table.insert(name: name, value: value) }
    }
}

extension ByteBuffer {
    /// An HPACK integer with an `prefix`-bit prefix, the bits above it set to `flags`
    /// (RFC 7541 §5.1).
    mutating func writeHPACKInteger(_ value: Int, prefix: Int, flags: UInt8) {
        let limit = (1 << prefix) - 1
        if value < limit {
            writeInteger(flags | UInt8(value))
            return
        }
        writeInteger(flags | UInt8(limit))
        var rest = value - limit
        while rest >= 128 {
            writeInteger(UInt8(rest & 0x7F | 0x80))
            rest >>= 7
        }
        writeInteger(UInt8(rest))
    }

    /// An HPACK string literal, Huffman-coded when that is shorter (RFC 7541 §5.2).
    mutating func writeHPACKString(_ string: String) {
        let rawCount = string.utf8.count
        let huffmanCount = HPACKHuffman.encodedCount(string)
        if huffmanCount < rawCount {
            writeHPACKInteger(huffmanCount, prefix: 7, flags: 0x80)
            HPACKHuffman.encode(string, count: huffmanCount, into: &self)
        } else {
            writeHPACKInteger(rawCount, prefix: 7, flags: 0x00)
            writeString(string)
        }
    }
}
