// swift-tools-version: 6.1
import PackageDescription

/// Settings every target shares: Swift 6 strict concurrency is the language mode's default;
/// `ExistentialAny` keeps dynamic dispatch visible in the source.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// The numerics are built for Haswell-class x86-64 (AVX2, FMA) so that the Swift SIMD code
/// vectorises (every x86-64 server of the last decade has it). In release without runtime checks:
/// `fit` runs about 20 % faster than with them (interleaved `recurd bench fit`, README), and the
/// test suite runs on the release build (`make test`), so what ships is what is tested. Debug
/// builds optimise them too, so that a debug test run is not dominated by unoptimised maths.
var numericsSettings: [SwiftSetting] = strictSettings + [
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
    .unsafeFlags(["-O"], .when(configuration: .debug)),
    // Lets clang-imported sqrtf (under `SIMD.squareRoot()`) vectorise instead of calling libm.
    .unsafeFlags(["-Xcc", "-fno-math-errno"]),
]
#if arch(x86_64)
numericsSettings.append(.unsafeFlags(["-target-cpu", "haswell"]))
#endif

let package = Package(
    name: "recurd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "recurd", targets: ["recurd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // TOML for the config file (toml++ underneath): sections, types and line-numbered errors.
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [

        // libzmq (Debian libzmq3-dev) and recurd's own small Swift wrapper over it. No pkgConfig:
        // Debian's libzmq.pc drags in krb5's -isystem flags, which SwiftPM refuses with a warning;
        // zmq.h and libzmq.so are on the default paths.
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"], swiftSettings: strictSettings),

        // recurd's own kernels in C: dense products (sgemm, sgemv) and the cells' elementwise work,
        // each in portable, AVX2 and AVX-512 variants chosen at run time from cpuid (target
        // attributes, so no ISA flags: it builds on any CPU, arm64 included).
        .target(name: "CRecurdKernels", cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]),
        // Maths only: the recurrent cells, heads, losses, optimisers, TBPTT. No I/O.
        .target(name: "RecurdNumerics", dependencies: ["CRecurdKernels"], swiftSettings: numericsSettings),
        // Every stream's state as one record: layout, codec, the table of streams in memory, and
        // DESIGN §3's per-step bookkeeping (shared by `recurd fit` and the daemon). No I/O.
        .target(name: "RecurdStreams", dependencies: ["RecurdNumerics", "RecurdForecast"], swiftSettings: numericsSettings),
        // Per-stream forecasting helpers beside the network: the forecast combiner and the
        // anomaly score, each a function over its state in the stream's record. No I/O.
        .target(name: "RecurdForecast", swiftSettings: numericsSettings),
        // The bundled pre-trained byte model (Models/pretrain_text.py), compiled in as bytes.
        .target(name: "CRecurdTextModel"),
        // SQLite (Debian libsqlite3-dev) through its C API: the stream store's one connection
        // lives on one thread, so GRDB's queues and record types would add nothing.
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        // DESIGN §6's state that lasts: the stream store and model checkpoints on disk.
        // zlib (Debian zlib1g-dev): stored stream records are shuffled and deflated.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "RecurdStore", dependencies: ["CSQLite", "CZlib", "RecurdModelFile", "SafeTensors"], swiftSettings: strictSettings),
        // The safetensors container format, bytes in and bytes out. No I/O.
        .target(name: "SafeTensors", swiftSettings: strictSettings),
        // DESIGN §2: a model as safetensors tensors and metadata, validated. No I/O.
        .target(name: "RecurdModelFile", dependencies: ["RecurdNumerics", "SafeTensors"], swiftSettings: strictSettings),
        // Wire protocol v1 (DESIGN §4): input and output payloads, binary and JSON. No I/O.
        .target(name: "RecurdWire", swiftSettings: strictSettings),
        // Parsing recorded streams (CSV of features, text bytes). No I/O.
        .target(name: "RecurdData", swiftSettings: strictSettings),

        // The daemon: stream table, batching, serving loop, control, metrics, HTTP. Its hot loop
        // runs on one thread that owns its state, so release builds skip dynamic exclusivity checks.
        .target(
            name: "RecurdDaemon",
            dependencies: [
                "RecurdNumerics", "RecurdStreams", "RecurdModelFile", "RecurdStore", "RecurdWire", "ZeroMQ", "CRecurdTextModel",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),

        .executableTarget(
            name: "recurd",
            dependencies: [
                "RecurdNumerics", "RecurdStreams", "RecurdModelFile", "RecurdData", "SafeTensors", "RecurdDaemon", "RecurdStore", "RecurdWire", "ZeroMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),

        // Shared test helpers (fixture paths, seeded models); used by the test targets only.
        .target(name: "RecurdTestSupport", dependencies: ["RecurdNumerics", "RecurdWire", "ZeroMQ"], path: "Tests/RecurdTestSupport", swiftSettings: strictSettings),
        .testTarget(name: "RecurdNumericsTests", dependencies: ["RecurdNumerics", "CRecurdKernels", "RecurdTestSupport"], swiftSettings: strictSettings),
        .testTarget(
            name: "RecurdModelFileTests",
            dependencies: ["RecurdModelFile", "RecurdNumerics", "RecurdStreams", "RecurdData", "SafeTensors", "RecurdTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "RecurdWireTests", dependencies: ["RecurdWire"], swiftSettings: strictSettings),
        .testTarget(name: "RecurdStoreTests", dependencies: ["RecurdStore", "RecurdModelFile", "RecurdNumerics", "RecurdTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "RecurdStreamsTests", dependencies: ["RecurdStreams", "RecurdNumerics", "RecurdStore", "RecurdTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "RecurdForecastTests", dependencies: ["RecurdForecast", "RecurdNumerics", "RecurdTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"], swiftSettings: strictSettings),
        .testTarget(
            name: "RecurdDaemonTests",
            dependencies: ["RecurdDaemon", "RecurdNumerics", "RecurdStore", "RecurdStreams", "RecurdForecast", "RecurdTestSupport", "ZeroMQ", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "RecurdCLITests", dependencies: ["RecurdTestSupport", "RecurdWire", "ZeroMQ", "RecurdModelFile", "RecurdNumerics", "RecurdStore"],
                    swiftSettings: strictSettings),
    ]
)
