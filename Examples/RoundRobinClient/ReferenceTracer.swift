import Synchronization
import Tracing

/// The tracer of `--trace`: it does per span what any exporting tracer must do on the caller's
/// thread — random trace and span ids, the parent's ids carried in the service context, the
/// attributes, events and status kept under the span's lock, a W3C `traceparent` field written on
/// injection — and then drops the span where an exporter would queue it. So the traced row of the
/// benchmark shows what the pool's spans cost, not what a test tracer's bookkeeping costs.
struct ReferenceTracer: Tracer {
    /// Spans ended so far.
    let ended = ReferenceTracer.Counter()

    final class Counter: Sendable {
        private let count = Atomic(0)
        var value: Int { count.load(ordering: .relaxed) }
        func increment() { count.add(1, ordering: .relaxed) }
    }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> ServiceContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> ReferenceSpan {
        var context = context()
        var generator = SystemRandomNumberGenerator()
        let parent = context[ReferenceSpanIDs.self]
        let ids = ReferenceSpanIDs(
            traceHigh: parent?.traceHigh ?? generator.next(),
            traceLow: parent?.traceLow ?? generator.next(),
            span: generator.next()
        )
        context[ReferenceSpanIDs.self] = ids
        return ReferenceSpan(operationName: operationName, context: context, ended: ended)
    }

    func forceFlush() {}

    func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext, into carrier: inout Carrier, using injector: Inject
    ) where Inject.Carrier == Carrier {
        guard let ids = context[ReferenceSpanIDs.self] else { return }
        injector.inject(ids.traceparent, forKey: "traceparent", into: &carrier)
    }

    /// A client only injects.
    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract
    ) where Extract.Carrier == Carrier {}
}

/// A span's ids in the service context, as W3C trace context has them.
struct ReferenceSpanIDs: ServiceContextKey, Sendable {
    typealias Value = ReferenceSpanIDs
    var traceHigh: UInt64
    var traceLow: UInt64
    var span: UInt64

    /// `00-<trace id>-<span id>-01`.
    var traceparent: String {
        let digits = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 55) { buffer in
            var at = 0
            func put(_ byte: UInt8) {
                buffer[at] = byte
                at += 1
            }
            func hex(_ value: UInt64) {
                for shift in stride(from: 60, through: 0, by: -4) { put(digits[Int((value >> UInt64(shift)) & 0xf)]) }
            }
            for byte in "00-".utf8 { put(byte) }
            hex(traceHigh)
            hex(traceLow)
            put(UInt8(ascii: "-"))
            hex(span)
            for byte in "-01".utf8 { put(byte) }
            return at
        }
    }
}

/// A span of ``ReferenceTracer``: its data under a lock, counted and dropped when it ends.
final class ReferenceSpan: Span {
    private struct Data {
        var operationName: String
        var attributes = SpanAttributes()
        var events: [SpanEvent] = []
        var links: [SpanLink] = []
        var status: SpanStatus?
        var ended = false
    }

    let context: ServiceContext
    private let data: Mutex<Data>
    private let ended: ReferenceTracer.Counter

    init(operationName: String, context: ServiceContext, ended: ReferenceTracer.Counter) {
        self.context = context
        self.data = Mutex(Data(operationName: operationName))
        self.ended = ended
    }

    var operationName: String {
        get { data.withLock { $0.operationName } }
        set { data.withLock { $0.operationName = newValue } }
    }

    var attributes: SpanAttributes {
        get { data.withLock { $0.attributes } }
        set { data.withLock { $0.attributes = newValue } }
    }

    var isRecording: Bool { data.withLock { !$0.ended } }

    func setStatus(_ status: SpanStatus) { data.withLock { $0.status = status } }

    func addEvent(_ event: SpanEvent) { data.withLock { $0.events.append(event) } }

    func addLink(_ link: SpanLink) { data.withLock { $0.links.append(link) } }

    func recordError<Instant: TracerInstant>(
        _ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant
    ) {
        let event = SpanEvent(name: "exception", at: instant(), attributes: attributes)
        data.withLock { $0.events.append(event) }
    }

    func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let first = data.withLock { data in
            defer { data.ended = true }
            return !data.ended
        }
        if first { ended.increment() }
    }
}
