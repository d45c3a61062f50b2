/// HPACK's dynamic table (RFC 7541 §2.3.2 and §4): the newest entry has index 62, and entries
/// are evicted oldest first to stay within the table's size. One per direction of a connection.
struct HPACKDynamicTable {
    /// Newest entry last; `firstEntry` is the oldest still in the table.
    private var entries: [(name: String, value: String)] = []
    private var firstEntry = 0
    private(set) var size = 0
    private(set) var maxSize: Int
    /// Changes whenever an entry is added or evicted, that is whenever indices may move.
    private(set) var generation = 0

    init(maxSize: Int) {
        self.maxSize = maxSize
    }

    /// The entry with HPACK index `index` (62 and up), if there is one.
    func entry(at index: Int) -> (name: String, value: String)? {
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
        generation &+= 1
        let entrySize = Self.size(name: name, value: value)
        evict(toFit: entrySize)
        guard entrySize <= maxSize else { return }
        entries.append((name, value))
        size += entrySize
    }

    mutating func resize(to newSize: Int) {
        generation &+= 1
        maxSize = newSize
        evict(toFit: 0)
    }

    private mutating func evict(toFit entrySize: Int) {
        while size + entrySize > maxSize, firstEntry < entries.count {
            let oldest = entries[firstEntry]
            size -= Self.size(name: oldest.name, value: oldest.value)
            firstEntry += 1
        }
        // Drop evicted slots now and then, so the array does not grow without bound.
        if firstEntry > 64, firstEntry * 2 > entries.count {
            entries.removeFirst(firstEntry)
            firstEntry = 0
        }
    }

    static func size(name: String, value: String) -> Int {
        32 + name.utf8.count + value.utf8.count
    }
}
