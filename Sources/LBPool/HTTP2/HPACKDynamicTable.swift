/// HPACK's dynamic table (RFC 7541 §2.3.2 and §4): the newest entry has index 62, and entries
/// are evicted oldest first to stay within the table's size. One per direction of a connection.
///
/// Sizes count the octets of name and value as they were on the wire (RFC 7541 §4.1), which is
/// not the UTF-8 length of the decoded `String` when the octets were not UTF-8; each entry keeps
/// its octet counts so that both ends evict the same entries.
struct HPACKDynamicTable {
    struct Entry {
        var name: String
        var value: String
        var nameOctets: Int
        var size: Int
    }

    /// Newest entry last; `firstEntry` is the oldest still in the table.
    private var entries: [Entry] = []
    private var firstEntry = 0
    private(set) var size = 0
    private(set) var maxSize: Int
    /// Changes whenever an entry is added or evicted, that is whenever indices may move.
    private(set) var generation = 0

    init(maxSize: Int) {
        self.maxSize = maxSize
    }

    /// The entry with HPACK index `index` (62 and up), if there is one.
    func entry(at index: Int) -> Entry? {
        let position = entries.count - 1 - (index - 62)
        guard index >= 62, position >= firstEntry else { return nil }
        return entries[position]
    }

    /// The HPACK index of the newest entry with `name` (and `value`, unless nil).
    func index(name: String, value: String?) -> Int? {
        var index = 62
        var position = entries.count - 1
        while position >= firstEntry {
            let entry = entries[position]
            if entry.name == name, value == nil || entry.value == value {
                return index
            }
            index += 1
            position -= 1
        }
        return nil
    }

    /// Adds an entry, evicting what it needs; an entry larger than the whole table empties it
    /// and is not added (RFC 7541 §4.4).
    mutating func insert(name: String, value: String) {
        insert(name: name, value: value, nameOctets: name.utf8.count, valueOctets: value.utf8.count)
    }

    /// Adds an entry whose name and value were `nameOctets` and `valueOctets` long on the wire.
    mutating func insert(name: String, value: String, nameOctets: Int, valueOctets: Int) {
        generation &+= 1
        let entrySize = 32 + nameOctets + valueOctets
        evict(toFit: entrySize)
        guard entrySize <= maxSize else { return }
        entries.append(Entry(name: name, value: value, nameOctets: nameOctets, size: entrySize))
        size += entrySize
    }

    mutating func resize(to newSize: Int) {
        generation &+= 1
        maxSize = newSize
        evict(toFit: 0)
    }

    private mutating func evict(toFit entrySize: Int) {
        while size + entrySize > maxSize, firstEntry < entries.count {
            size -= entries[firstEntry].size
            firstEntry += 1
        }
        // Drop evicted slots now and then, so the array does not grow without bound.
        if firstEntry > 64, firstEntry * 2 > entries.count {
            entries.removeFirst(firstEntry)
            firstEntry = 0
        }
    }
}
