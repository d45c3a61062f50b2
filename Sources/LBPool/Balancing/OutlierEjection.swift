import Synchronization

/// Passive health: an address whose requests keep failing is taken out of the picker for a
/// while, then let back in on probation. Pure: events in, actions out.
///
/// ```
///  healthy ──N consecutive failures──▶ ejected ──backoff elapsed──▶ probing
///     ▲                                  ▲                            │
///     └──────────── success ─────────────┼──────── failure ───────────┘
/// ```
/// The backoff doubles with each ejection of the same address, up to the maximum; an ejection
/// that would leave fewer than `minAvailableShare` of the addresses in use does not happen.
struct OutlierEjection: Sendable {
    enum Health: Sendable, Equatable {
        case healthy
        case ejected
        case probing
    }

    struct Entry: Sendable, Equatable {
        var health = Health.healthy
        var ejections = 0
    }

    enum Action: Sendable, Equatable {
        case eject(ResolvedAddress, for: Duration)
        /// The ejection ended: the address takes requests again, the first of them its probe.
        case probe(ResolvedAddress)
        case recovered(ResolvedAddress)
    }

    /// What ejects an address and for how long (from ``LBPool/Configuration/OutlierDetection``).
    struct Settings: Sendable, Hashable {
        var consecutiveFailures: Int
        var baseEjectionTime: Duration
        var maxEjectionTime: Duration
        var minAvailableShare: Double
    }

    let settings: Settings
    private(set) var entries: [ResolvedAddress: Entry] = [:]

    init(settings: Settings) {
        self.settings = settings
    }

    func health(of address: ResolvedAddress) -> Health {
        entries[address]?.health ?? .healthy
    }

    /// The ejection time for the `ejections`-th ejection.
    func ejectionTime(_ ejections: Int) -> Duration {
        Backoff.capped(initial: settings.baseEjectionTime, multiplier: 2, maximum: settings.maxEjectionTime, attempt: ejections)
    }

    /// `consecutiveFailures` failures in a row (or one on probation) happened at `address`,
    /// one of `addresses` in use.
    mutating func failuresReached(_ address: ResolvedAddress, addresses: Int) -> [Action] {
        var entry = entries[address] ?? Entry()
        guard entry.health != .ejected else { return [] }
        let ejected = entries.values.count { $0.health == .ejected }
        let remaining = Double(addresses - ejected - 1) / Double(max(addresses, 1))
        guard remaining >= settings.minAvailableShare else { return [] }
        entry.health = .ejected
        entry.ejections += 1
        entries[address] = entry
        return [.eject(address, for: ejectionTime(entry.ejections))]
    }

    mutating func ejectionEnded(_ address: ResolvedAddress) -> [Action] {
        guard entries[address]?.health == .ejected else { return [] }
        entries[address]?.health = .probing
        return [.probe(address)]
    }

    mutating func succeeded(_ address: ResolvedAddress) -> [Action] {
        guard entries[address]?.health == .probing else { return [] }
        entries[address]?.health = .healthy
        return [.recovered(address)]
    }

    mutating func removed(_ address: ResolvedAddress) {
        entries[address] = nil
    }
}
