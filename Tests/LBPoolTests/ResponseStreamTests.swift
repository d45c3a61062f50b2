import HTTPTypes
import NIOCore
import Testing
@testable import LBPool

/// Where a stream's response meets the task awaiting it: the head, the body chunks, the end,
/// the trailers and failures, in either order of arrival and asking.
@Suite(.timeLimit(.minutes(1))) struct ResponseStreamTests {
    let ok = HTTPResponse(status: .ok)

    @Test func aHeadThatArrivedFirstIsHandedOverOnceThenRefused() async throws {
        let stream = ResponseStream()
        stream.deliver(ok, expectedLength: 5, chunk: ByteBuffer(string: "hello"), end: true)
        #expect(try await stream.head().status == .ok)
        #expect(stream.expectedLength == 5)
        await #expect(throws: ResponseHeadTaken.self) { try await stream.head() }
        #expect(try await stream.next().map { String(buffer: $0) } == "hello")
        #expect(try await stream.next() == nil)
    }

    @Test func aTaskWaitingForTheHeadWakesWhenItArrives() async throws {
        let stream = ResponseStream()
        async let head = stream.head()
        // Whether the task waits already or not, the head reaches it.
        stream.deliverHead(ok, expectedLength: nil)
        #expect(try await head.status == .ok)
    }

    @Test func chunksComeInOrderThenTheEndAndTheTrailers() async throws {
        let stream = ResponseStream()
        stream.deliverHead(ok, expectedLength: nil)
        _ = try await stream.head()
        async let first = stream.next()
        stream.append(ByteBuffer(string: "one,"), end: false)
        #expect(try await first.map { String(buffer: $0) } == "one,")
        stream.append(ByteBuffer(string: "two,"), end: false)
        stream.append(ByteBuffer(string: "three"), end: false)
        #expect(stream.trailers == nil, "no trailers before the end")
        var trailers = HTTPFields()
        trailers[HTTPField.Name("grpc-status")!] = "0"
        stream.setTrailers(trailers)
        stream.append(nil, end: true)
        var rest = ""
        while let chunk = try await stream.next() { rest += String(buffer: chunk) }
        #expect(rest == "two,three")
        #expect(stream.trailers?[HTTPField.Name("grpc-status")!] == "0")
    }

    @Test func aFailureBeforeTheHeadSaysWhetherTheHeadWentOut() async throws {
        let unsent = ResponseStream()
        unsent.fail(ConnectionClosedError("gone"))
        let failure = await #expect(throws: ResponseStream.HeadFailure.self) { try await unsent.head() }
        #expect(failure?.headSent == false)
        #expect(unsent.headFailure != nil)

        let sent = ResponseStream()
        sent.markHeadSent()
        async let head = sent.head()
        sent.fail(ConnectionClosedError("gone"))
        do {
            _ = try await head
            Issue.record("a failed stream produced a head")
        } catch let failure as ResponseStream.HeadFailure {
            #expect(failure.headSent)
        }
    }

    @Test func aFailureInTheBodyCutsItOffAfterWhatArrived() async throws {
        let stream = ResponseStream()
        stream.deliver(ok, expectedLength: 100, chunk: ByteBuffer(string: "part"), end: false)
        _ = try await stream.head()
        stream.fail(ConnectionClosedError("reset"))
        #expect(try await stream.next().map { String(buffer: $0) } == "part", "what arrived is still read")
        await #expect(throws: ResponseBodyCutOff.self) { try await stream.next() }
        #expect(stream.trailers == nil)
    }

    @Test func cancellingTheWaitingTaskFailsTheHeadWithCancellation() async throws {
        let stream = ResponseStream()
        let task = Task { try await stream.head() }
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("a cancelled wait produced a head")
        } catch let failure as ResponseStream.HeadFailure {
            #expect(failure.underlying is CancellationError)
        }
    }
}
