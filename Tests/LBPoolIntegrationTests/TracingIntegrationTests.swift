import HTTPTypes
import InMemoryTracing
import LBPool
import NIOCore
import Testing
import Tracing

/// Requests' spans, recorded by swift-distributed-tracing's in-memory tracer, against real nginx
/// backends; nginx echoes the propagation fields it received.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TracingIntegrationTests {
    /// nginx answering `/trace` with the in-memory tracer's two propagation fields.
    static func tracingBackend(ip: String, port: Int, keepaliveRequests: Int = 1_000_000) throws -> NginxBackend {
        try NginxBackend(
            ip: ip, port: port, keepaliveRequests: keepaliveRequests,
            extraServerConfig: #"location = /trace { return 200 "$http_in_memory_trace_id $http_in_memory_span_id"; }"#)
    }

    /// A pool for the fleet behind `dns` that traces into a new in-memory tracer.
    static func tracedPool(dns: DNSServer, port: Int) throws -> (LBPool, InMemoryTracer) {
        let tracer = InMemoryTracer()
        var configuration = testConfiguration(dns: dns)
        configuration.tracer = tracer
        return (try LBPool(target: "http://\(serviceName):\(port)", configuration: configuration), tracer)
    }

    static func attribute(_ span: FinishedInMemorySpan, _ name: String) -> SpanAttribute? {
        span.attributes.get(name)
    }

    @Test func aRequestIsAClientSpanWithAChildPerAttemptWhoseContextReachesTheServer() async throws {
        let (backends, dns, port) = try await startFleet(["127.0.0.2", "127.0.0.3"], ttl: 30) {
            try Self.tracingBackend(ip: $0, port: $1)
        }
        defer { withExtendedLifetime((backends, dns)) {} }
        let (pool, tracer) = try Self.tracedPool(dns: dns, port: port)
        let response = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(minimumAddresses: 2, timeout: .seconds(10))
            return try await pool.execute(get("/trace", id: "traced"))
        }
        let spans = tracer.finishedSpans
        #expect(spans.count == 2)
        let request = try #require(spans.first { $0.parentSpanID == nil })
        let attempt = try #require(spans.first { $0.parentSpanID == request.spanID })
        #expect(request.operationName == "GET" && attempt.operationName == "GET")
        #expect(request.kind == .client && attempt.kind == .client)
        #expect(attempt.traceID == request.traceID)
        for span in [request, attempt] {
            #expect(Self.attribute(span, "http.request.method") == .string("GET"))
            #expect(Self.attribute(span, "server.address") == .string(serviceName))
            #expect(Self.attribute(span, "server.port") == .int64(Int64(port)))
            #expect(Self.attribute(span, "http.response.status_code") == .int64(200))
            #expect(Self.attribute(span, "error.type") == nil)
        }
        #expect(Self.attribute(attempt, "network.peer.address") == .string(response.servedBy.ip))
        #expect(Self.attribute(attempt, "http.request.resend_count") == nil, "the first attempt is no re-send")
        // The attempt's context went out in its fields, as the tracer injects it.
        #expect(String(buffer: response.body) == "\(attempt.traceID) \(attempt.spanID)")
    }

    @Test func aRequestReSentAfterAGoAwayShowsEveryAttemptAndWhy() async throws {
        // nginx closes each connection after five requests with GOAWAY: of sixteen streams sent
        // at once, those above its last-stream-id were not processed and go out again.
        let (backends, dns, port) = try await startFleet(["127.0.0.2"], ttl: 30) {
            try Self.tracingBackend(ip: $0, port: $1, keepaliveRequests: 5)
        }
        defer { withExtendedLifetime((backends, dns)) {} }
        let (pool, tracer) = try Self.tracedPool(dns: dns, port: port)
        let statuses = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(10))
            return try await withThrowingTaskGroup(of: Int.self) { group in
                for number in 0..<16 {
                    group.addTask { try await pool.execute(get("/trace", id: "burst-\(number)")).head.status.code }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        #expect(statuses == Array(repeating: 200, count: 16))
        let spans = tracer.finishedSpans
        let requests = spans.filter { $0.parentSpanID == nil }
        #expect(requests.count == 16)
        let resent = requests.filter { request in request.events.contains { $0.name == "lbpool.resend" } }
        #expect(!resent.isEmpty, "some of the sixteen were refused or above a GOAWAY's last-stream-id")
        var cut: [FinishedInMemorySpan] = []
        for request in resent {
            let attempts = spans.filter { $0.parentSpanID == request.spanID }
            let resends = request.events.filter { $0.name == "lbpool.resend" }.count
            #expect(attempts.count == resends + 1, "one attempt span per attempt")
            let counts = attempts.compactMap { Self.attribute($0, "http.request.resend_count") }
            let numbers = counts.compactMap { if case .int64(let number) = $0 { number } else { nil } }
            #expect(numbers.sorted() == Array(1...Int64(resends)), "the re-sends are numbered")
            #expect(Set(attempts.map(\.traceID)) == [request.traceID])
            let failed = attempts.filter { Self.attribute($0, "error.type") != nil }
            #expect(failed.count == resends, "every attempt but the last failed")
            #expect(failed.allSatisfy { Self.attribute($0, "error.type") == .string("connectionFailed") && $0.errors.count == 1 })
            cut += failed.filter { attempt in attempt.events.contains { $0.name == "lbpool.goaway" } }
            #expect(Self.attribute(request, "http.response.status_code") == .int64(200))
            #expect(request.status?.code != .error)
        }
        // nginx said GOAWAY before refusing what came after its fifth request.
        #expect(!cut.isEmpty, "a GOAWAY is an event of the attempts it cut short")
        for attempt in cut {
            let event = try #require(attempt.events.first { $0.name == "lbpool.goaway" })
            #expect(event.attributes.get("http2.goaway.error_code") == .string("NO_ERROR"))
        }
    }

    @Test func aDuplexStreamIsTracedLikeARequest() async throws {
        let (backends, dns, port) = try await startFleet(["127.0.0.2"], ttl: 30) { try Self.tracingBackend(ip: $0, port: $1) }
        defer { withExtendedLifetime((backends, dns)) {} }
        let (pool, tracer) = try Self.tracedPool(dns: dns, port: port)
        let echoed = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(10))
            return try await pool.execute(
                get("/trace", id: "duplex"),
                duplex: { stream in
                    // nginx answers `return` at once, without waiting for the body.
                    let response = try await stream.response()
                    var body = try await response.body.collect(upTo: 1024)
                    return body.readString(length: body.readableBytes) ?? ""
                })
        }
        let spans = tracer.finishedSpans
        #expect(spans.count == 2)
        let request = try #require(spans.first { $0.parentSpanID == nil })
        let attempt = try #require(spans.first { $0.parentSpanID == request.spanID })
        #expect(Self.attribute(request, "http.response.status_code") == .int64(200))
        #expect(Self.attribute(attempt, "http.response.status_code") == .int64(200))
        #expect(Self.attribute(attempt, "network.peer.address") == .string("127.0.0.2"))
        #expect(echoed == "\(attempt.traceID) \(attempt.spanID)")
    }

    @Test func aFailedRequestCarriesItsErrorType() async throws {
        // Nothing listens on the address: the request waits for a ready connection until its
        // deadline.
        let port = try freePort(alsoOn: ["127.0.0.9"])
        let tracer = InMemoryTracer()
        var configuration = testConfiguration(dns: nil)
        configuration.tracer = tracer
        configuration.requestTimeout = .milliseconds(300)
        let pool = try LBPool(target: "http://127.0.0.9:\(port)", configuration: configuration)
        let error = try await withRunningPool(pool) { pool in
            await #expect(throws: LBPoolError.self) { try await pool.execute(get(id: "refused")) }
        }
        #expect(error?.code == .deadlineExceeded)
        let spans = tracer.finishedSpans
        #expect(spans.count == 1, "no attempt got a connection")
        let request = try #require(spans.first)
        #expect(Self.attribute(request, "error.type") == .string("deadlineExceeded"))
        #expect(request.status?.code == .error)
        #expect(request.errors.count == 1)
    }

    @Test func withNothingBootstrappedNoContextIsSent() async throws {
        let (backends, dns, port) = try await startFleet(["127.0.0.2"], ttl: 30) { try Self.tracingBackend(ip: $0, port: $1) }
        defer { withExtendedLifetime((backends, dns)) {} }
        // The process-wide tracer is the no-op one unless something bootstrapped it.
        #expect(InstrumentationSystem.tracer is NoOpTracer)
        let pool = try LBPool(target: "http://\(serviceName):\(port)", configuration: testConfiguration(dns: dns))
        let response = try await withRunningPool(pool) { pool in
            try await pool.waitUntilReady(timeout: .seconds(10))
            return try await pool.execute(get("/trace", id: "untraced"))
        }
        // nginx writes an absent field as the empty string.
        #expect(String(buffer: response.body) == " ")
    }
}
