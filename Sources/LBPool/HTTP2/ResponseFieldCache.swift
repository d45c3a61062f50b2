import HTTPTypes

/// The regular response fields a connection accepted lately, each with the `HTTPField` made of
/// it. A server sends most fields in every response (nginx: `server`, `content-type`, and the
/// same `date` for a second), so most fields of a response skip the checks of
/// ``ResponseHead/add(_:_:cache:)`` and the making of a new `HTTPField`. Only fields that
/// passed those checks are kept.
struct ResponseFieldCache {
    static let capacity = 8
    private var entries: [(name: String, value: String, field: HTTPField)] = []
    private var nextSlot = 0

    /// The field made of `name` and `value` before, if it is still here.
    func field(name: String, value: String) -> HTTPField? {
        for entry in entries where entry.name == name && entry.value == value {
            return entry.field
        }
        return nil
    }

    /// Keeps `field`, made of `name` and `value`, in place of the oldest entry once full.
    mutating func remember(name: String, value: String, field: HTTPField) {
        if entries.count < Self.capacity {
            entries.append((name, value, field))
        } else {
            entries[nextSlot] = (name, value, field)
            nextSlot = (nextSlot + 1) % Self.capacity
        }
    }
}
