import LBPool
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The scale case of `make bench`: a name with many A records (answered over TCP after UDP
/// truncation), `minConnections` 1. Prints one JSON line: addresses resolved, seconds until
/// every address had a ready connection, resident memory per idle connection, and the CPU the
/// idle pool used over `--idle` seconds, as a percentage of one core.
@main
struct ScaleProbe {
    static func main() async throws {
        var arguments = CommandLine.arguments.dropFirst()
        guard let target = arguments.popFirst(), let dnsServer = arguments.popFirst(), let expected = Int(arguments.popFirst() ?? "") else {
            print("usage: ScaleProbe TARGET DNS-SERVER ADDRESSES [IDLE-SECONDS]")
            exit(2)
        }
        let idleSeconds = Int(arguments.popFirst() ?? "") ?? 10

        var configuration = LBPool.Configuration()
        configuration.minConnections = 1
        configuration.dns.nameServers = [dnsServer]
        var logger = Logger(label: "ScaleProbe")
        logger.logLevel = .warning
        let pool = try LBPool(target: target, configuration: configuration, logger: logger)

        let rssBefore = residentKiB()
        let clock = ContinuousClock()
        let start = clock.now
        let running = Task { try await pool.run() }
        try await pool.waitUntilReady(minimumAddresses: expected, timeout: .seconds(60))
        let readySeconds = seconds(clock.now - start)
        let ready = pool.readyAddresses.count

        // Idle: no requests; what the pool costs while it only keeps its connections.
        try await Task.sleep(for: .seconds(1))
        let rssIdle = residentKiB()
        let cpuBefore = cpuSeconds()
        let idleStart = clock.now
        try await Task.sleep(for: .seconds(idleSeconds))
        let idleCPU = (cpuSeconds() - cpuBefore) / seconds(clock.now - idleStart)
        let connections = pool.snapshot().addresses.reduce(0) { $0 + $1.connections.count }

        pool.shutDown()
        try await running.value
        let perConnectionKiB = connections > 0 ? Double(rssIdle - rssBefore) / Double(connections) : 0
        print("{\"addresses\":\(ready),\"connections\":\(connections),\"readySeconds\":\(round3(readySeconds)),"
              + "\"rssKiBPerConnection\":\(round3(perConnectionKiB)),\"rssKiBIdle\":\(rssIdle),"
              + "\"idleCorePercent\":\(round3(idleCPU * 100)),\"idleSeconds\":\(idleSeconds)}")
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func round3(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }

    /// VmRSS of this process, from /proc/self/status.
    static func residentKiB() -> Int {
        guard let file = fopen("/proc/self/status", "r") else { return 0 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("VmRSS:") {
                return Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
            }
        }
        return 0
    }

    /// User and system CPU time of this process.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func value(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return value(usage.ru_utime) + value(usage.ru_stime)
    }
}
