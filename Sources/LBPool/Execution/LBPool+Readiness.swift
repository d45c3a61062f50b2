extension LBPool {
    /// The addresses that have at least one ready connection now, sorted.
    public var readyAddresses: [ResolvedAddress] {
        balancer.pickerState.current().snapshot.endpoints.map(\.address)
    }

    /// Waits until at least `minimumAddresses` addresses have a ready connection, for example
    /// to warm a pool up before taking traffic. With `nil` (the default), waits until every
    /// address of the latest resolution has one (and at least one address resolved); with a
    /// ``Configuration/subset``, until as many as the subset's size do (or every address, if
    /// fewer resolved).
    ///
    /// - Throws: ``LBPoolError`` with `.deadlineExceeded` when `timeout` passes first (the
    ///   message says how many were ready), `.shutdown` when the pool shuts down.
    public func waitUntilReady(minimumAddresses: Int? = nil, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (snapshot, version) = balancer.pickerState.current()
            if snapshot.isShuttingDown { throw LBPoolError(.shutdown, "the pool for \(target) is shutting down") }
            let resolved = snapshot.resolution?.addresses.count ?? .max
            let wanted = minimumAddresses ?? max(min(resolved, configuration.subset?.size ?? .max), 1)
            if snapshot.endpoints.count >= wanted { return }
            if ContinuousClock.now >= deadline {
                let wantedText = wanted == .max ? "the resolved" : "\(wanted)"
                var message = "\(snapshot.endpoints.count) of \(wantedText) addresses ready after \(timeout)"
                let ready = Set(snapshot.endpoints.map(\.address))
                let waiting = self.snapshot().addresses.filter { !ready.contains($0.address) }
                if !waiting.isEmpty { message += "; not ready: " + waiting.map(Self.summary).joined(separator: ", ") }
                if let error = snapshot.lastConnectionError { message += "; last dial: \(error)" }
                throw LBPoolError(.deadlineExceeded, message)
            }
            await balancer.pickerState.waitForChange(after: version, until: deadline)
            try Task.checkCancellation()
        }
    }

    /// One address in a line: its health and its connections' states and ages.
    private static func summary(_ address: PoolSnapshot.Address) -> String {
        let connections = address.connections.map { "\($0.id) \($0.state.rawValue) \($0.age)" }
        return "\(address.address) (\(address.health.rawValue)" + (connections.isEmpty ? ", no connection" : ": " + connections.joined(separator: ", ")) + ")"
    }
}
