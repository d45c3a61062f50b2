import CoreMetrics
import Synchronization

/// OpenTelemetry's `http.client.open_connections` for one address: its open connections, split
/// into `active` (at least one request in flight) and `idle`. Counted without a lock by the
/// connections that carry it, as they open, close, and go from no request to one and back; each
/// change records both gauges.
final class ConnectionUsage: Sendable {
    private let open = Atomic<Int>(0)
    private let active = Atomic<Int>(0)
    private let idleGauge: Gauge
    private let activeGauge: Gauge

    init(idle: Gauge, active: Gauge) {
        self.idleGauge = idle
        self.activeGauge = active
    }

    func opened() {
        open.wrappingAdd(1, ordering: .relaxed)
        record()
    }

    func closed(wasActive: Bool) {
        open.wrappingSubtract(1, ordering: .relaxed)
        if wasActive { active.wrappingSubtract(1, ordering: .relaxed) }
        record()
    }

    func becameActive() {
        active.wrappingAdd(1, ordering: .relaxed)
        record()
    }

    func becameIdle() {
        active.wrappingSubtract(1, ordering: .relaxed)
        record()
    }

    private func record() {
        let active = max(self.active.load(ordering: .relaxed), 0)
        activeGauge.record(active)
        idleGauge.record(max(open.load(ordering: .relaxed) - active, 0))
    }

    func destroy() {
        idleGauge.destroy()
        activeGauge.destroy()
    }
}
