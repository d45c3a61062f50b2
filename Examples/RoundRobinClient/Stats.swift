import LBPool

/// What one worker saw; merged at the end so that workers share nothing while running.
struct Stats: Sendable {
    var succeeded = 0
    var failed = 0
    var latenciesMs: [Double] = []
    var perAddress: [String: (succeeded: Int, failed: Int)] = [:]
    var errors: [String: Int] = [:]

    mutating func record(address: String?, latencyMs: Double, error: String?) {
        latenciesMs.append(latencyMs)
        let key = address ?? "(none)"
        if let error {
            failed += 1
            perAddress[key, default: (0, 0)].failed += 1
            errors[error, default: 0] += 1
        } else {
            succeeded += 1
            perAddress[key, default: (0, 0)].succeeded += 1
        }
    }

    mutating func merge(_ other: Stats) {
        succeeded += other.succeeded
        failed += other.failed
        latenciesMs += other.latenciesMs
        for (address, entry) in other.perAddress {
            let mine = perAddress[address] ?? (0, 0)
            perAddress[address] = (mine.succeeded + entry.succeeded, mine.failed + entry.failed)
        }
        errors.merge(other.errors, uniquingKeysWith: +)
    }

    /// The p50 and p99 latencies, from one sort.
    func percentiles() -> (p50: Double, p99: Double) {
        guard !latenciesMs.isEmpty else { return (0, 0) }
        let sorted = latenciesMs.sorted()
        func at(_ fraction: Double) -> Double {
            let rank = Int((fraction * Double(sorted.count - 1)).rounded())
            return sorted[min(max(rank, 0), sorted.count - 1)]
        }
        return (at(0.5), at(0.99))
    }

    /// `spans`: the spans a `--trace` run ended, when it traced.
    func json(elapsedSeconds: Double, spans: Int? = nil) -> String {
        let latency = percentiles()
        let total = succeeded + failed
        let addresses = perAddress.keys.sorted().map { address in
            let entry = perAddress[address] ?? (0, 0)
            return "\(quote(address)):{\"succeeded\":\(entry.succeeded),\"failed\":\(entry.failed)}"
        }
        let errorEntries = errors.keys.sorted().map { "\(quote($0)):\(errors[$0] ?? 0)" }
        return "{\"requests\":\(total),\"succeeded\":\(succeeded),\"failed\":\(failed),"
            + "\"elapsedSeconds\":\(format(elapsedSeconds)),"
            + "\"requestsPerSecond\":\(format(elapsedSeconds > 0 ? Double(total) / elapsedSeconds : 0)),"
            + "\"latencyMs\":{\"p50\":\(format(latency.p50)),\"p99\":\(format(latency.p99))},"
            + "\"addresses\":{\(addresses.joined(separator: ","))},"
            + "\"errors\":{\(errorEntries.joined(separator: ","))}"
            + (spans.map { ",\"spans\":\($0)" } ?? "") + "}"
    }

    func table(elapsedSeconds: Double) -> String {
        let latency = percentiles()
        var lines = ["address                                   succeeded     failed"]
        for address in perAddress.keys.sorted() {
            let entry = perAddress[address] ?? (0, 0)
            lines.append(pad(address, 40) + leftPad("\(entry.succeeded)", 12) + leftPad("\(entry.failed)", 11))
        }
        lines.append(pad("total", 40) + leftPad("\(succeeded)", 12) + leftPad("\(failed)", 11))
        let total = succeeded + failed
        lines.append(
            "elapsed \(format(elapsedSeconds)) s, \(format(elapsedSeconds > 0 ? Double(total) / elapsedSeconds : 0)) requests/s, "
                + "p50 \(format(latency.p50)) ms, p99 \(format(latency.p99)) ms")
        for (error, count) in errors.sorted(by: { $0.value > $1.value }) {
            lines.append("error ×\(count): \(error)")
        }
        return lines.joined(separator: "\n")
    }

    private func quote(_ text: String) -> String {
        var escaped = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default:
                if scalar.value < 0x20 {
                    escaped += "\\u" + leftPad(String(scalar.value, radix: 16), 4, "0")
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return escaped + "\""
    }

    private func format(_ value: Double) -> String {
        let scaled = (value * 1000).rounded() / 1000
        return "\(scaled)"
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    private func leftPad(_ text: String, _ width: Int, _ fill: Character = " ") -> String {
        text.count >= width ? text : String(repeating: fill, count: width - text.count) + text
    }
}
