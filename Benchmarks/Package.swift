// swift-tools-version:6.2
import PackageDescription

// Benchmarks of swift-lbpool, kept apart so that the library does not depend on what only
// measuring needs. `make bench` (in the repository root) builds and runs everything here.
let package = Package(
    name: "swift-lbpool-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-lbpool", path: "..", traits: ["BenchmarkHooks"]),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        // Micro-benchmarks (package-benchmark): picks, budgets, the balancer's reaction to an
        // address change, and allocations per request through the pool.
        .executableTarget(
            name: "LBPoolBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "LBPool", package: "swift-lbpool"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Benchmarks/LBPoolBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The same load as the example client, through AsyncHTTPClient.
        .executableTarget(
            name: "AHCLoad",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The 1000-address case: time to ready, memory per idle connection, idle CPU.
        .executableTarget(
            name: "ScaleProbe",
            dependencies: [
                .product(name: "LBPool", package: "swift-lbpool"),
            ]
        ),
    ]
)
