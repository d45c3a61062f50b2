import NIOPosix

/// Why no subconnection could be picked; Execution tells the caller.
enum PickFailure: Error {
    case shuttingDown
    /// The name resolved to no address.
    case noAddresses(ResolverError)
    /// The deadline passed: with every connection at its server's stream limit (`allFull`), or
    /// with none ready; what the resolver and the latest dial said.
    case deadline(allFull: Bool, resolutionError: ResolverError?, resolved: Bool, lastDial: ConnectionCloseReason?)
}

extension Balancer {
    /// Picks a ready subconnection with a free stream and reserves that stream, waiting for one
    /// until `deadline`. Prefers an endpoint other than `avoiding` when another is ready. Asks
    /// for one more connection to an address whose connections are all at their stream limit.
    ///
    /// The picker chooses the address; among its connections, one on the calling task's event
    /// loop is taken first (a task that prefers ``PoolTaskExecutor`` runs on one), so that the
    /// request is written and its response read without a handoff between threads. An address
    /// with none there is asked for one on that loop, and meanwhile served from another.
    func pick(with picker: any Picker, until deadline: ContinuousClock.Instant, avoiding: ResolvedAddress?) async throws -> Subconnection {
        // Only a pool on more than one loop has a choice to make.
        let here = eventLoopIndex.count > 1 ? MultiThreadedEventLoopGroup.currentEventLoop.map { ObjectIdentifier($0) } : nil
        while true {
            let (endpoints, isShuttingDown, version) = pickerState.forPick()
            if isShuttingDown { throw PickFailure.shuttingDown }
            if !endpoints.isEmpty {
                var index = picker.pick(from: endpoints)
                if let avoiding, endpoints.count > 1, endpoints.storage[index].address == avoiding {
                    index = picker.pick(from: endpoints)
                }
                metrics.picks.increment()
                let endpoint = endpoints.storage[index]
                if let here {
                    if let local = endpoint.leastLoadedSubconnection(on: here) {
                        if local.shared.tryReserve() { return local }
                    } else if let loop = eventLoopIndex[here] {
                        connectionWanted(endpoint, onLoop: loop)
                    }
                }
                if let subconnection = endpoint.leastLoadedSubconnection() {
                    if subconnection.shared.tryReserve() { return subconnection }
                    // Every connection of this address has all the streams its server allows:
                    // ask for one more connection, and meanwhile use any address with room.
                    let loop = here.flatMap { eventLoopIndex[$0] } ?? (spreadsConnections ? nil : 0)
                    connectionsFull(subconnection.address, onLoop: loop)
                }
                for endpoint in endpoints.storage {
                    if let subconnection = endpoint.leastLoadedSubconnection(), subconnection.shared.tryReserve() {
                        return subconnection
                    }
                }
                // All full (or all started draining since the snapshot): wait for a free stream
                // or a new connection, within the deadline.
            } else if let resolution = pickerState.current().snapshot.resolution, resolution.addresses.isEmpty,
                let error = resolution.error, error.kind == .noRecords
            {
                throw PickFailure.noAddresses(error)
            }
            if ContinuousClock.now >= deadline {
                let snapshot = pickerState.current().snapshot
                throw PickFailure.deadline(
                    allFull: !endpoints.isEmpty, resolutionError: snapshot.resolution?.error,
                    resolved: snapshot.resolution != nil, lastDial: snapshot.lastConnectionError)
            }
            metrics.pendingRequests.increment()
            await pickerState.waitForChange(after: version, until: deadline)
            metrics.pendingRequests.decrement()
            try Task.checkCancellation()
        }
    }
}
