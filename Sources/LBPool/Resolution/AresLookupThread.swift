import CCAres
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The outcome of one c-ares query for one record type.
enum AresLookupOutcome: Sendable {
    case records([(ip: String, ttlSeconds: Int)])
    case failure(status: Int32, message: String)
}

/// The record types the pool asks for.
enum AresRecordType: Int32, Sendable {
    case a = 1
    case aaaa = 28
}

/// Owns one c-ares channel and the one thread allowed to touch it.
///
/// c-ares 1.18 is not thread-safe, so every call on the channel happens on a dedicated thread
/// that `poll()`s the channel's sockets and a wake-up pipe. Other threads only append to a
/// locked submission queue and write a byte to the pipe. Each lookup also carries a deadline
/// the thread enforces, so a caller never waits longer than that whatever c-ares does.
final class AresLookupThread: Sendable {
    struct Submission: Sendable {
        var name: String
        var type: AresRecordType
        var deadline: ContinuousClock.Instant
        var completion: @Sendable (AresLookupOutcome) -> Void
    }

    private struct Queue {
        var submissions: [Submission] = []
        var stopped = false
    }

    private let queue = Mutex(Queue())
    private let wakeRead: Int32
    private let wakeWrite: Int32

    private static let libraryInitialised: Int32 = ares_library_init(ARES_LIB_INIT_ALL)

    /// Creates the channel with explicit timeouts and starts its thread.
    /// - Parameter servers: `host:port` entries (`[v6]:port` for IPv6); empty uses resolv.conf.
    init(servers: [String], perTryTimeout: Duration, tries: Int) throws(ResolverError) {
        _ = Self.libraryInitialised
        var options = ares_options()
        options.timeout = Int32(clamping: perTryTimeout.milliseconds)
        options.tries = Int32(clamping: tries)
        var channel: ares_channel?
        let status = ares_init_options(&channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)
        guard status == ARES_SUCCESS, let channel else {
            throw ResolverError(kind: .lookupFailed, name: "", reason: "c-ares channel: \(Self.message(status))")
        }
        if !servers.isEmpty {
            let csv = servers.joined(separator: ",")
            let status = ares_set_servers_ports_csv(channel, csv)
            guard status == ARES_SUCCESS else {
                ares_destroy(channel)
                throw ResolverError(kind: .lookupFailed, name: "", reason: "name servers '\(csv)': \(Self.message(status))")
            }
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            ares_destroy(channel)
            throw ResolverError(kind: .lookupFailed, name: "", reason: "pipe() failed: errno \(errno)")
        }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        self.wakeRead = fds[0]
        self.wakeWrite = fds[1]

        let loop = AresLoop(owner: self, channel: channel)
        let context = Unmanaged.passRetained(loop).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { context in
                guard let context else { return nil }
                let loop = Unmanaged<AresLoop>.fromOpaque(context).takeRetainedValue()
                loop.run()
                return nil
            }, context)
        guard rc == 0 else {
            Unmanaged<AresLoop>.fromOpaque(context).release()
            ares_destroy(channel)
            close(fds[0]); close(fds[1])
            throw ResolverError(kind: .lookupFailed, name: "", reason: "pthread_create failed: \(rc)")
        }
        pthread_detach(thread)
    }

    /// Queues a lookup. `completion` runs exactly once, on the resolver thread.
    func lookup(_ submission: Submission) {
        let accepted = queue.withLock { queue -> Bool in
            guard !queue.stopped else { return false }
            queue.submissions.append(submission)
            return true
        }
        if accepted {
            wake()
        } else {
            submission.completion(.failure(status: ARES_EDESTRUCTION, message: "resolver stopped"))
        }
    }

    /// Stops the thread: pending lookups complete with a failure, the channel is destroyed and
    /// the pipe closed by the thread itself. Returns without waiting.
    func shutdown() {
        let first = queue.withLock { queue -> Bool in
            defer { queue.stopped = true }
            return !queue.stopped
        }
        if first { wake() }
    }

    fileprivate func takeSubmissions() -> (submissions: [Submission], stopped: Bool) {
        queue.withLock { queue in
            defer { queue.submissions.removeAll(keepingCapacity: true) }
            return (queue.submissions, queue.stopped)
        }
    }

    fileprivate var wakeReadFD: Int32 { wakeRead }

    fileprivate func closeWakePipe() {
        close(wakeRead)
        close(wakeWrite)
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    static func message(_ status: Int32) -> String {
        String(cString: ares_strerror(status))
    }
}

/// A lookup in flight; lives on the resolver thread only.
private final class PendingLookup {
    let submission: AresLookupThread.Submission
    var finished = false

    init(_ submission: AresLookupThread.Submission) {
        self.submission = submission
    }

    func finish(_ outcome: AresLookupOutcome) {
        guard !finished else { return }
        finished = true
        submission.completion(outcome)
    }
}

/// The thread body. Not Sendable in spirit: created on the caller's thread, then used only on
/// the resolver thread; `AresLookupThread` keeps no reference to it.
private final class AresLoop {
    let owner: AresLookupThread
    let channel: ares_channel
    var pending: [PendingLookup] = []

    init(owner: AresLookupThread, channel: ares_channel) {
        self.owner = owner
        self.channel = channel
    }

    func run() {
        var sockets = [ares_socket_t](repeating: ARES_SOCKET_BAD, count: Int(ARES_GETSOCK_MAXNUM))
        var pollFDs: [pollfd] = []
        var drain = [UInt8](repeating: 0, count: 64)
        while true {
            let (submissions, stopped) = owner.takeSubmissions()
            if stopped { break }
            for submission in submissions { start(submission) }

            let bits = ares_getsock(channel, &sockets, Int32(ARES_GETSOCK_MAXNUM))
            pollFDs.removeAll(keepingCapacity: true)
            pollFDs.append(pollfd(fd: owner.wakeReadFD, events: Int16(POLLIN), revents: 0))
            for index in 0..<Int(ARES_GETSOCK_MAXNUM) {
                let readable = bits & (1 << index) != 0
                let writable = bits & (1 << (index + Int(ARES_GETSOCK_MAXNUM))) != 0
                guard readable || writable else { continue }
                let events = (readable ? Int16(POLLIN) : 0) | (writable ? Int16(POLLOUT) : 0)
                pollFDs.append(pollfd(fd: sockets[index], events: events, revents: 0))
            }

            let ready = poll(&pollFDs, nfds_t(pollFDs.count), pollTimeoutMilliseconds())
            if ready > 0, pollFDs[0].revents != 0 {
                while read(owner.wakeReadFD, &drain, drain.count) > 0 {}
            }
            var processed = false
            if ready > 0 {
                for entry in pollFDs.dropFirst() where entry.revents != 0 {
                    let readable = entry.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0
                    let writable = entry.revents & Int16(POLLOUT) != 0
                    ares_process_fd(channel, readable ? entry.fd : ARES_SOCKET_BAD, writable ? entry.fd : ARES_SOCKET_BAD)
                    processed = true
                }
            }
            if !processed {
                // Lets c-ares handle its own per-try timeouts.
                ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD)
            }
            expireDeadlines()
        }
        // Completes every query still open with ARES_EDESTRUCTION through its callback.
        ares_destroy(channel)
        for lookup in pending {
            lookup.finish(.failure(status: ARES_EDESTRUCTION, message: "resolver stopped"))
        }
        pending.removeAll()
        for submission in owner.takeSubmissions().submissions {
            submission.completion(.failure(status: ARES_EDESTRUCTION, message: "resolver stopped"))
        }
        owner.closeWakePipe()
    }

    private func start(_ submission: AresLookupThread.Submission) {
        let lookup = PendingLookup(submission)
        pending.append(lookup)
        let context = Unmanaged.passRetained(lookup).toOpaque()
        ares_search(
            channel, submission.name, 1 /* C_IN */, submission.type.rawValue,
            { context, status, _, answer, length in
                guard let context else { return }
                let lookup = Unmanaged<PendingLookup>.fromOpaque(context).takeRetainedValue()
                guard !lookup.finished else { return }
                if status != ARES_SUCCESS {
                    lookup.finish(.failure(status: status, message: AresLookupThread.message(status)))
                    return
                }
                lookup.finish(AresAnswerParser.parse(answer, length: length, type: lookup.submission.type))
            }, context)
    }

    private func pollTimeoutMilliseconds() -> Int32 {
        var maximum = timeval(tv_sec: 1, tv_usec: 0)
        var result = timeval()
        var milliseconds: Int64 = 1000
        if let tv = ares_timeout(channel, &maximum, &result) {
            milliseconds = Int64(tv.pointee.tv_sec) * 1000 + Int64(tv.pointee.tv_usec) / 1000
        }
        let now = ContinuousClock.now
        for lookup in pending where !lookup.finished {
            let remaining = max(lookup.submission.deadline - now, .zero).milliseconds
            milliseconds = min(milliseconds, remaining)
        }
        return Int32(clamping: max(milliseconds, 0))
    }

    private func expireDeadlines() {
        let now = ContinuousClock.now
        for lookup in pending where !lookup.finished && lookup.submission.deadline <= now {
            lookup.finish(.failure(status: ARES_ETIMEOUT, message: "no answer before the lookup deadline"))
        }
        pending.removeAll { $0.finished }
    }
}

/// Turns a DNS answer into addresses with their TTLs.
enum AresAnswerParser {
    static func parse(_ answer: UnsafeMutablePointer<UInt8>?, length: Int32, type: AresRecordType) -> AresLookupOutcome {
        guard let answer, length > 0 else {
            return .failure(status: ARES_EBADRESP, message: "empty DNS answer")
        }
        // Every A/AAAA record takes at least 16 bytes of the answer, which bounds the count.
        let capacity = max(Int(length) / 16, 1)
        var count = Int32(capacity)
        var records: [(ip: String, ttlSeconds: Int)] = []
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch type {
        case .a:
            var entries = [ares_addrttl](repeating: ares_addrttl(), count: capacity)
            let status = ares_parse_a_reply(answer, length, nil, &entries, &count)
            guard status == ARES_SUCCESS else { return .failure(status: status, message: AresLookupThread.message(status)) }
            for index in 0..<Int(count) {
                var address = entries[index].ipaddr
                inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
                records.append((Self.string(text), Int(entries[index].ttl)))
            }
        case .aaaa:
            var entries = [ares_addr6ttl](repeating: ares_addr6ttl(), count: capacity)
            let status = ares_parse_aaaa_reply(answer, length, nil, &entries, &count)
            guard status == ARES_SUCCESS else { return .failure(status: status, message: AresLookupThread.message(status)) }
            for index in 0..<Int(count) {
                var address = entries[index].ip6addr
                inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
                records.append((Self.string(text), Int(entries[index].ttl)))
            }
        }
        if records.isEmpty {
            return .failure(status: ARES_ENODATA, message: AresLookupThread.message(ARES_ENODATA))
        }
        return .records(records)
    }
}

extension AresAnswerParser {
    /// The text of a NUL-terminated C buffer.
    static func string(_ buffer: [CChar]) -> String {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
