import LBPool

/// Command-line options of the example client.
struct Options {
    enum Limit {
        case requests(Int)
        case duration(Duration)
    }

    var target: String
    var path: String
    var limit: Limit = .requests(1000)
    var concurrency = 1
    var dnsServer: String?
    var minConnections = 1
    var caFile: String?
    var json = false
    var method = "GET"
    var bodyBytes = 0
    var maxLifetime: Duration?
    var keepalive: Duration?
    var events = false
    var maxAttempts: Int?
    var retryBudget = true
    var picker = LBPool.PickerChoice.roundRobin
    /// Workers run on the pool's event loops (`LBPool.taskExecutor`), not the global executor.
    var onEventLoops = true
    /// The number of event-loop threads of the pool; `nil`: SwiftNIO's shared group.
    var eventLoops: Int?
    /// Every request carries a unique `x-request-id`.
    var requestIDs = true
    /// Trace every request with `ReferenceTracer`, which does a real tracer's work per span and
    /// drops the span at its end: the cost of making spans, without any export.
    var trace = false
    /// A line per second with requests/s, p99 and each address's share, and pool events
    /// inline; `nil`: when standard output is a terminal (and not `--json`).
    var live: Bool?
    /// One CSV row per second per address: second, address, requests, failures, open connections.
    var timeline: String?
    /// Download the path whole instead of a load, resuming elsewhere when its connection closes.
    var follow = false
    /// Speak HTTP/1.1 instead of HTTP/2, on any scheme; the workers then spread over every
    /// loop of the pool.
    var http1 = false
    /// Over TLS, let ALPN choose per connection (h2, else HTTP/1.1).
    var negotiate = false
    /// Connect to only this many addresses (rendezvous subsetting).
    var subsetSize: Int?
    /// The subset's key; `nil`: the library draws one.
    var subsetKey: String?

    static let usage = """
        usage: RoundRobinClient URL [--requests N | --duration SECONDS] [--concurrency C]
                                    [--dns-server HOST:PORT] [--min-connections K] [--ca-file PEM] [--json]
                                    [--method GET|POST|PUT|DELETE] [--body-bytes N]
                                    [--max-lifetime SECONDS] [--keepalive SECONDS] [--events]
                                    [--max-attempts N] [--no-retry-budget]
                                    [--picker round-robin|random|p2c|least-loaded]
                                    [--executor event-loop|global] [--event-loops N] [--no-request-id] [--trace]
                                    [--live | --no-live] [--timeline FILE.csv] [--follow]
                                    [--subset-size N] [--subset-key KEY] [--http1 | --negotiate]
        """

    struct UsageError: Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ arguments: [String]) throws(UsageError) -> Options {
        var url: String?
        var options = Options(target: "", path: "/")
        var index = 0
        func value(_ flag: String) throws(UsageError) -> String {
            index += 1
            guard index < arguments.count else { throw UsageError(description: "\(flag) needs a value") }
            return arguments[index]
        }
        func seconds(_ flag: String) throws(UsageError) -> Duration {
            let text = try value(flag)
            guard let seconds = Double(text), seconds > 0, seconds.isFinite else {
                throw UsageError(description: "\(flag) needs a positive number of seconds, got '\(text)'")
            }
            return .milliseconds(Int64(seconds * 1000))
        }
        func positiveInt(_ flag: String) throws(UsageError) -> Int {
            let text = try value(flag)
            guard let number = Int(text), number > 0 else {
                throw UsageError(description: "\(flag) needs a positive whole number, got '\(text)'")
            }
            return number
        }
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "--requests": options.limit = .requests(try positiveInt(argument))
            case "--duration": options.limit = .duration(try seconds(argument))
            case "--max-lifetime": options.maxLifetime = try seconds(argument)
            case "--keepalive": options.keepalive = try seconds(argument)
            case "--events": options.events = true
            case "--max-attempts": options.maxAttempts = try positiveInt(argument)
            case "--no-retry-budget": options.retryBudget = false
            case "--picker":
                switch try value(argument) {
                case "round-robin": options.picker = .roundRobin
                case "random": options.picker = .random
                case "p2c": options.picker = .powerOfTwoChoices
                case "least-loaded": options.picker = .leastLoaded
                case let other:
                    throw UsageError(description: "--picker must be round-robin, random, p2c or least-loaded, got '\(other)'")
                }
            case "--executor":
                switch try value(argument) {
                case "event-loop": options.onEventLoops = true
                case "global": options.onEventLoops = false
                case let other:
                    throw UsageError(description: "--executor must be event-loop or global, got '\(other)'")
                }
            case "--event-loops": options.eventLoops = try positiveInt(argument)
            case "--no-request-id": options.requestIDs = false
            case "--trace": options.trace = true
            case "--subset-size": options.subsetSize = try positiveInt(argument)
            case "--subset-key":
                let key = try value(argument)
                guard !key.isEmpty else { throw UsageError(description: "--subset-key needs a non-empty key") }
                options.subsetKey = key
            case "--method":
                let method = try value(argument).uppercased()
                guard ["GET", "POST", "PUT", "DELETE"].contains(method) else {
                    throw UsageError(description: "--method must be GET, POST, PUT or DELETE, got '\(method)'")
                }
                options.method = method
            case "--body-bytes":
                let text = try value(argument)
                guard let count = Int(text), count >= 0 else {
                    throw UsageError(description: "--body-bytes needs a whole number from 0, got '\(text)'")
                }
                options.bodyBytes = count
            case "--concurrency": options.concurrency = try positiveInt(argument)
            case "--dns-server": options.dnsServer = try value(argument)
            case "--min-connections": options.minConnections = try positiveInt(argument)
            case "--ca-file": options.caFile = try value(argument)
            case "--json": options.json = true
            case "--live": options.live = true
            case "--no-live": options.live = false
            case "--timeline": options.timeline = try value(argument)
            case "--follow": options.follow = true
            case "--http1": options.http1 = true
            case "--negotiate": options.negotiate = true
            case "-h", "--help": throw UsageError(description: "")
            default:
                guard !argument.hasPrefix("-"), url == nil else {
                    throw UsageError(description: "unexpected argument '\(argument)'")
                }
                url = argument
            }
            index += 1
        }
        guard let url else { throw UsageError(description: "missing URL") }
        if options.http1, options.negotiate {
            throw UsageError(description: "--http1 and --negotiate exclude each other")
        }
        if options.subsetKey != nil, options.subsetSize == nil {
            throw UsageError(description: "--subset-key needs --subset-size")
        }
        (options.target, options.path) = split(url)
        return options
    }

    /// Splits `http://host:port/path?q` into the target and the request path.
    static func split(_ url: String) -> (target: String, path: String) {
        guard let schemeEnd = url.firstIndex(of: ":"), url[schemeEnd...].hasPrefix("://") else { return (url, "/") }
        let afterScheme = url.index(schemeEnd, offsetBy: 3)
        guard let slash = url[afterScheme...].firstIndex(where: { $0 == "/" || $0 == "?" }) else { return (url, "/") }
        let path = String(url[slash...])
        return (String(url[..<slash]), path.hasPrefix("/") ? path : "/" + path)
    }
}
