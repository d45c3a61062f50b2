import Synchronization

/// Request outcomes of one address, counted without a lock by the requests on any of its
/// connections (which carry it): failures in a row, and whether the address is on probation.
/// Balancing decides what the counts mean (``OutlierEjection``); a connection only carries it.
final class OutcomeCounter: Sendable {
    let consecutiveFailures = Atomic<Int>(0)
    let onProbation = Atomic<Bool>(false)
}
