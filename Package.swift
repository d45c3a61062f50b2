// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "swift-lbpool",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LBPool", targets: ["LBPool"]),
        .executable(name: "RoundRobinClient", targets: ["RoundRobinClient"]),
    ],
    traits: [
        // The entry points the nested Benchmarks package measures internals through
        // (`BenchmarkHooks`); off by default, so no user's build contains them.
        .trait(name: "BenchmarkHooks", description: "Internals for the Benchmarks package; not API."),
        // The request path without its tracing code (the configured tracer is ignored): the
        // baseline `make bench` measures tracing with no tracer against. Off by default.
        .trait(name: "TracingCompiledOut", description: "No tracing on the request path; a benchmark baseline."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    ],
    targets: [
        .systemLibrary(
            name: "CCAres",
            pkgConfig: "libcares",
            providers: [.apt(["libc-ares-dev"]), .brew(["c-ares"])]
        ),
        .target(
            name: "LBPool",
            dependencies: [
                "CCAres",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]
        ),
        .executableTarget(
            name: "RoundRobinClient",
            dependencies: [
                "LBPool",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Examples/RoundRobinClient",
            swiftSettings: [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]
        ),
        // The fuzz targets' logic, one entry function per target, shared by the libFuzzer
        // executables below and the corpus replay in LBPoolTests. Not in any product: clients
        // of the library never build it. It needs LBPool's internals (`@testable import`), so
        // it builds only in debug, with testability, as the tests do.
        .target(
            name: "LBPoolFuzzEntries",
            dependencies: [
                "LBPool",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Fuzz/Entries"
        ),
        .testTarget(
            name: "LBPoolTests",
            dependencies: [
                "LBPool",
                "LBPoolFuzzEntries",
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "LBPoolIntegrationTests",
            dependencies: [
                "LBPool",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// The libFuzzer executables and the seed writer (`make fuzz`, `make fuzz-seeds`), only when
// LBPOOL_FUZZ is set: they link only with `--sanitize fuzzer` (libFuzzer has their `main`), so a
// plain `swift build` must not see them.
if Context.environment["LBPOOL_FUZZ"] != nil {
    for name in ["FrameParserFuzzer", "HPACKDecoderFuzzer", "ConnectionFuzzer", "FuzzSeedWriter"] {
        package.targets.append(
            .executableTarget(
                name: name,
                dependencies: ["LBPoolFuzzEntries"],
                path: "Fuzz/Targets/\(name)"
            ))
    }
}
