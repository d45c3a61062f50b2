import Foundation
import LBPool
import Synchronization

/// What the workers did in the current second: requests and failures per address, and the
/// latencies. Only made when the live view or the timeline is on (a lock per request).
final class SecondRecorder: Sendable {
    struct Second: Sendable {
        var requests: [String: Int] = [:]
        var failures: [String: Int] = [:]
        var latenciesMs: [Double] = []
    }

    private let current = Mutex(Second())

    func record(address: String?, latencyMs: Double, failed: Bool) {
        let address = address ?? "-"
        current.withLock { second in
            second.requests[address, default: 0] += 1
            if failed { second.failures[address, default: 0] += 1 }
            second.latenciesMs.append(latencyMs)
        }
    }

    /// The second so far; the next one starts empty.
    func take() -> Second {
        current.withLock { second in
            defer { second = Second() }
            return second
        }
    }
}

/// Once a second: a line with requests/s, p99 and each address's share of the second as a bar
/// (`live`), and one row per address in the timeline CSV (`timeline`): second, address,
/// requests, failures, open connections.
struct LiveView: Sendable {
    let pool: LBPool
    let recorder: SecondRecorder
    let live: Bool
    let timeline: String?

    static let header = "second,address,requests,failures,open_connections\n"

    /// Runs until cancelled, then writes the last, partial second.
    func run() async {
        let clock = ContinuousClock()
        let start = clock.now
        let file = timeline.flatMap { path -> FileHandle? in
            _ = FileManager.default.createFile(atPath: path, contents: Data(Self.header.utf8))
            let handle = FileHandle(forWritingAtPath: path)
            handle?.seekToEndOfFile()
            return handle
        }
        defer { try? file?.close() }
        var tick = 1
        while true {
            let cancelled: Bool
            do {
                try await Task.sleep(until: start + .seconds(tick), clock: clock)
                cancelled = false
            } catch {
                cancelled = true
            }
            let elapsed = (clock.now - start).seconds
            let second = recorder.take()
            let open = Self.openConnections(pool.snapshot())
            if let file {
                let addresses = Set(second.requests.keys).union(open.keys).sorted()
                var rows = ""
                for address in addresses {
                    rows += "\(tick),\(address),\(second.requests[address] ?? 0),\(second.failures[address] ?? 0),\(open[address] ?? 0)\n"
                }
                file.write(Data(rows.utf8))
            }
            if live && !cancelled { printLine(Self.line(second, at: elapsed, span: 1)) }
            if cancelled { return }
            tick += 1
        }
    }

    /// Open (ready, rotating or draining) connections per address.
    static func openConnections(_ snapshot: PoolSnapshot) -> [String: Int] {
        var open: [String: Int] = [:]
        for address in snapshot.addresses {
            open[address.address.ip] = address.connections.count { $0.state != .connecting }
        }
        return open
    }

    /// `  12s   84 211 req/s  p99  2.10 ms  127.0.0.2 ███░░░░░░░ 33%  …`
    static func line(_ second: SecondRecorder.Second, at elapsed: Double, span: Double) -> String {
        let total = second.requests.values.reduce(0, +)
        let sorted = second.latenciesMs.sorted()
        let p99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
        let failures = second.failures.values.reduce(0, +)
        var text = String(format: "%4.0fs %9.0f req/s  p99 %6.2f ms", elapsed, Double(total) / span, p99)
        if failures > 0 { text += "  \(failures) failed" }
        for (address, count) in second.requests.sorted(by: { $0.key < $1.key }) {
            let share = total == 0 ? 0 : Double(count) / Double(total)
            let filled = Int((share * 10).rounded())
            text += "  \(address) " + String(repeating: "█", count: filled) + String(repeating: "░", count: 10 - filled)
            text += String(format: " %3.0f%%", share * 100)
        }
        return text
    }
}

/// Writes a line to standard output at once (one `write`), also when it is a file or a pipe.
func printLine(_ text: String) {
    let line = text + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { buffer in
        write(1, buffer.baseAddress, buffer.count - 1)
    }
}
