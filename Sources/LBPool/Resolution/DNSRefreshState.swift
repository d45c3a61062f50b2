/// The pure part of DNS resolution: when to look up next, and which addresses to publish after
/// a lookup succeeded or failed. Reads no clock and does no I/O; the caller passes `now`.
struct DNSRefreshState: Sendable {
    struct Settings: Sendable, Equatable {
        var minRefreshInterval: Duration
        var maxRefreshInterval: Duration
        var minEarlyRefreshInterval: Duration
        var emptyAnswerPolicy: DNSResolver.EmptyAnswerPolicy
    }

    typealias Instant = ContinuousClock.Instant

    struct LastGood: Sendable {
        var addresses: [ResolvedAddress]
        var at: Instant
        var ttl: Duration
    }

    let settings: Settings
    private(set) var lastGood: LastGood?
    private(set) var lastLookupAt: Instant?
    private(set) var nextRefreshAt: Instant?

    init(settings: Settings) {
        self.settings = settings
    }

    /// The refresh interval for a record TTL: the TTL clamped to the configured bounds.
    func refreshInterval(forTTLSeconds ttl: Int) -> Duration {
        let ttlDuration = Duration.seconds(max(ttl, 0))
        return min(max(ttlDuration, settings.minRefreshInterval), settings.maxRefreshInterval)
    }

    /// The earliest time an early (requested) refresh may run, so that early lookups happen at
    /// most once per `minEarlyRefreshInterval`.
    func earliestEarlyRefresh(requestedAt now: Instant) -> Instant {
        guard let last = lastLookupAt else { return now }
        return max(now, last + settings.minEarlyRefreshInterval)
    }

    /// A lookup returned addresses (each with its record TTL in seconds). Refresh at the smallest TTL.
    mutating func lookupSucceeded(_ records: [(address: ResolvedAddress, ttlSeconds: Int)], at now: Instant) -> ResolverUpdate {
        lastLookupAt = now
        var seen = Set<ResolvedAddress>()
        var addresses: [ResolvedAddress] = []
        addresses.reserveCapacity(records.count)
        for record in records where seen.insert(record.address).inserted {
            addresses.append(record.address)
        }
        let minTTL = records.map(\.ttlSeconds).min() ?? 0
        let interval = refreshInterval(forTTLSeconds: minTTL)
        nextRefreshAt = now + interval
        lastGood = LastGood(addresses: addresses, at: now, ttl: interval)
        return ResolverUpdate(addresses: addresses)
    }

    /// A lookup failed. Transport errors keep the last good set; an authoritative empty answer
    /// follows the ``DNSResolver/EmptyAnswerPolicy``.
    mutating func lookupFailed(_ error: ResolverError, at now: Instant) -> ResolverUpdate {
        lastLookupAt = now
        nextRefreshAt = now + settings.minRefreshInterval
        guard let lastGood else {
            return ResolverUpdate(addresses: [], error: error)
        }
        switch error.kind {
        case .lookupFailed:
            return ResolverUpdate(addresses: lastGood.addresses, error: error)
        case .noRecords:
            switch settings.emptyAnswerPolicy {
            case .keepLastAddressesForOneTTL where now < lastGood.at + lastGood.ttl:
                let expiry = lastGood.at + lastGood.ttl
                if let next = nextRefreshAt, expiry < next { nextRefreshAt = expiry }
                return ResolverUpdate(addresses: lastGood.addresses, error: error)
            case .keepLastAddressesForOneTTL, .dropAddresses:
                self.lastGood = nil
                return ResolverUpdate(addresses: [], error: error)
            }
        }
    }
}
