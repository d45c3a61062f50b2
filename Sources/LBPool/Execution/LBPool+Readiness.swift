extension LBPool {
    /// The addresses that have at least one ready connection now, sorted.
    public var readyAddresses: [ResolvedAddress] {
        balancer.pickerState.current().snapshot.endpoints.map(\.address)
    }

    /// Waits until at least `minimumAddresses` addresses have a ready connection, for example
    /// to warm a pool up before taking traffic. With `nil` (the default), waits until every
    /// address of the latest resolution has one (and at least one address resolved).
    ///
    /// - Throws: ``LBPoolError`` with `.deadlineExceeded` when `timeout` passes first (the
    ///   message says how many were ready), `.shutdown` when the pool shuts down.
    public func waitUntilReady(minimumAddresses: Int? = nil, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (snapshot, version) = balancer.pickerState.current()
            if snapshot.isShuttingDown { throw LBPoolError(.shutdown, "the pool for \(target) is shutting down") }
            let wanted = minimumAddresses ?? max(snapshot.resolution?.addresses.count ?? .max, 1)
            if snapshot.endpoints.count >= wanted { return }
            if ContinuousClock.now >= deadline {
                let wantedText = wanted == .max ? "the resolved" : "\(wanted)"
                throw LBPoolError(.deadlineExceeded,
                                  "\(snapshot.endpoints.count) of \(wantedText) addresses ready after \(timeout)")
            }
            await balancer.pickerState.waitForChange(after: version, until: deadline)
            try Task.checkCancellation()
        }
    }
}
