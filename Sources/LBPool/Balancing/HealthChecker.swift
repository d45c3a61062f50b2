import NIOCore

/// What an active health check needs of one connection.
protocol HealthCheckTarget: Sendable {
    /// The connection started to go away: checking it is over.
    var isGoingAway: Bool { get }
    /// Reserves a stream for the probe, as a request's pick does; `false` when every stream the
    /// server allows is in use.
    func reserveStream() -> Bool
    /// Gives the reserved stream back.
    func releaseStream()
    /// Sends the probe on the reserved stream: `true` for a status of 200–399 within `timeout`.
    func probe(timeout: Duration) async -> Bool
}

/// Probes one connection every interval until it goes away and reports each result: the
/// checker of the checker/tracker split, with ``ActiveHealth`` as the tracker that turns the
/// results into the address's state. The clock is passed in, so a test drives the time.
struct HealthChecker<C: Clock>: Sendable where C.Duration == Duration {
    let interval: Duration
    let timeout: Duration
    let clock: C

    /// Runs until the target goes away or the task is cancelled. A connection whose streams are
    /// all in use is busy, not sick: that round is skipped.
    func run(_ target: some HealthCheckTarget, report: (_ healthy: Bool) -> Void) async {
        while !Task.isCancelled, !target.isGoingAway {
            try? await clock.sleep(for: interval)
            guard !Task.isCancelled, !target.isGoingAway else { return }
            guard target.reserveStream() else { continue }
            let healthy = await target.probe(timeout: timeout)
            target.releaseStream()
            guard !target.isGoingAway else { return }
            report(healthy)
        }
    }
}

extension Balancer {
    /// A subconnection as the health checker sees it.
    struct ProbedSubconnection: HealthCheckTarget {
        let subconnection: Subconnection
        let head: RequestHead
        let balancer: Balancer

        var isGoingAway: Bool { subconnection.shared.closing.reason != nil }

        func reserveStream() -> Bool { subconnection.shared.tryReserve() }

        func releaseStream() { balancer.release(subconnection) }

        func probe(timeout: Duration) async -> Bool {
            do {
                return try await subconnection.execute(head: head, body: nil, deadline: .now() + TimeAmount(timeout)) { response, _ in
                    (200...399).contains(response.status.code)
                }
            } catch {
                return false
            }
        }
    }

    /// Gives back a stream slot that a pick or a probe reserved, and wakes the requests waiting
    /// for one if the connection had none free.
    func release(_ subconnection: Subconnection) {
        if subconnection.shared.release() { pickerState.capacityFreed() }
    }
}
