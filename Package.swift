// swift-tools-version:6.0
// swift-ray: Ray rebuilt in Swift. See README.md and ../shared/ARCHITECTURE.md.
import PackageDescription

let package = Package(
    name: "swift-ray",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RayConcurrency", targets: ["RayConcurrency"]),
        .library(name: "RayRPC", targets: ["RayRPC"]),
        .library(name: "RayYAML", targets: ["RayYAML"]),
        .library(name: "RayProtos", targets: ["RayProtos"]),
        .library(name: "RayCommon", targets: ["RayCommon"]),
        .library(name: "Ray", targets: ["Ray"]),
        .executable(name: "ray", targets: ["RayCLI"]),
        .executable(name: "rpc-benchmark", targets: ["RPCBenchmark"]),
        .executable(name: "rpc-demo", targets: ["RPCDemo"]),
        .executable(name: "ray-integration-app", targets: ["RayIntegrationApp"]),
        .executable(name: "ray-demo", targets: ["RayDemo"]),
        .executable(name: "ray-microbenchmark", targets: ["RayMicrobenchmark"]),
        .executable(name: "ray-multinode-benchmark", targets: ["RayMultiNodeBenchmark"]),
        .executable(name: "ray-scalability", targets: ["RayScalability"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // The thin C++ shim over Debian's grpc++ and yaml-cpp, behind a plain C header.
        // Debian: apt-get install libgrpc++-dev libyaml-cpp-dev (the Makefile's `deps` does it).
        // The libraries are linked by name: a .systemLibrary(pkgConfig: "grpc++") target makes SwiftPM
        // expand Debian's absl dependency graph without de-duplication and the link fails.
        .target(
            name: "CInterop",
            path: "CInterop",
            sources: ["src"],
            publicHeadersPath: "include",
            linkerSettings: [
                .linkedLibrary("grpc++"),
                .linkedLibrary("grpc"),
                .linkedLibrary("gpr"),
                .linkedLibrary("absl_synchronization"),
                .linkedLibrary("yaml-cpp"),
            ]
        ),
        // Generated swift-protobuf messages for everything in Protos/ (scripts/generate-protos.sh).
        .target(
            name: "RayProtos",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Sources/RayProtos"
        ),
        // Executors on threads of their own (with timers): where the control plane runs, so it never
        // waits for a thread of Swift's global pool.
        .target(name: "RayConcurrency"),
        // async/await gRPC over the shim: the only module that calls the gRPC part of CInterop.
        .target(
            name: "RayRPC",
            dependencies: ["CInterop", "RayConcurrency", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        // IDs, configuration, errors and the binary serialization every process shares.
        .target(name: "RayCommon"),
        // Method descriptors of the control-plane services, shared by servers and clients.
        .target(name: "RayServices", dependencies: ["RayCommon", "RayRPC", "RayProtos"]),
        // The Global Control Service (one per cluster).
        .target(name: "RayGCS", dependencies: ["RayCommon", "RayConcurrency", "RayRPC", "RayProtos", "RayScheduling", "RayServices"]),
        // The node's shared-memory object store (the raylet runs it; workers map it).
        .target(name: "RayObjectStore", dependencies: ["RayCommon"]),
        // A typed client of the GCS for drivers, workers, raylets and tools.
        .target(name: "RayGCSClient", dependencies: ["RayCommon", "RayConcurrency", "RayRPC", "RayProtos", "RayServices"]),
        // Scheduling policy, pure: which node a request goes to, given a view of the cluster's
        // resources and labels (hybrid, spread, node affinity, label selectors). No processes, no RPC.
        .target(name: "RayScheduling", dependencies: ["RayCommon"]),
        // Autoscaling policy, pure: the cluster config (Ray's schema), what to launch and end given
        // the demand and the nodes, launch backoff. No processes, no RPC.
        .target(name: "RayAutoscaling", dependencies: ["RayScheduling"]),
        // The autoscaler loop on the head (Ray's monitor) and the node-provider interface.
        .target(
            name: "RayAutoscaler",
            dependencies: ["RayAutoscaling", "RayCommon", "RayGCSClient", "RayProtos", "RayRPC", "RayScheduling", "RayServices"]),
        // The per-node daemon.
        .target(
            name: "RayRaylet",
            dependencies: ["RayCommon", "RayConcurrency", "RayGCSClient", "RayJobs", "RayObjectStore", "RayRPC", "RayProtos", "RayScheduling", "RayServices"]),
        // The library in every driver and worker: submits and executes tasks, owns objects.
        .target(
            name: "RayCoreWorker",
            dependencies: ["RayCommon", "RayConcurrency", "RayGCSClient", "RayObjectStore", "RayRPC", "RayProtos", "RayScheduling", "RayServices"]),
        // The public API: remote functions, ObjectRef, put/get/wait/cancel, RayApplication, and an
        // embedded local cluster (so it links the daemons; they never depend on it).
        .target(
            name: "Ray",
            dependencies: ["RayAutoscaling", "RayCommon", "RayConcurrency", "RayCoreWorker", "RayGCS", "RayGCSClient", "RayRaylet", "RayProtos", "RayRPC", "RayScheduling", "RayServices"]),
        // A Ray program the multi-process tests drive (driver and, re-launched, its workers).
        .executableTarget(name: "RayIntegrationApp", dependencies: ["Ray", "RayConcurrency"]),
        // Ray's `ray microbenchmark` figures (release build, `make bench`).
        .executableTarget(
            name: "RayMicrobenchmark",
            dependencies: ["Ray", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // Figures of a cluster of several nodes (scripts/multinode_benchmark.sh starts one).
        .executableTarget(name: "RayMultiNodeBenchmark", dependencies: ["Ray"]),
        // Ray's scalability envelope (release/benchmarks names), scaled to this machine.
        .executableTarget(name: "RayScalability", dependencies: ["Ray"]),
        // `make demo`: tasks, objects, refs as arguments and a parallel speed-up on an embedded cluster.
        .executableTarget(name: "RayDemo", dependencies: ["Ray"], path: "examples/RayDemo"),
        // Submitted jobs: Ray's JobSubmitRequest and JobDetails, their state in the GCS KV, the
        // supervisor that runs an entrypoint, working-directory packages.
        .target(
            name: "RayJobs",
            dependencies: ["RayCommon", "RayGCSClient", "RayProtos", "RayRPC", "RayScheduling",
                           .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        // The head's HTTP server (Ray's dashboard port): Jobs REST API, packages, health.
        .target(
            name: "RayDashboard",
            dependencies: ["RayAutoscaling", "RayCommon", "RayGCSClient", "RayJobs", "RayRPC", "RayScheduling", "RayServices",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HTTPTypes", package: "swift-http-types"),
                           .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket")]),
        // Each node's metrics agent: /metrics in Prometheus's text format with Ray's names, through
        // swift-metrics and swift-prometheus.
        .target(
            name: "RayMetrics",
            dependencies: ["RayCommon", "RayGCSClient", "RayProtos", "RayRPC", "RayServices",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "CoreMetrics", package: "swift-metrics"),
                           .product(name: "Prometheus", package: "swift-prometheus")]),
        // The `ray` command: start, stop, status, and the daemons it runs.
        .executableTarget(
            name: "RayCLI",
            dependencies: [
                "RayAutoscaler", "RayAutoscaling", "RayCommon", "RayDashboard", "RayGCS", "RayGCSClient", "RayJobs", "RayMetrics", "RayRaylet", "RayProtos",
                "RayScheduling", "RayYAML",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ]),
        // YAML to JSON over the shim's yaml-cpp part.
        .target(name: "RayYAML", dependencies: ["CInterop"]),
        // The test service (Protos/ray/testing.proto) served and called by RPC tests, demo and benchmark.
        .target(name: "RPCTestService", dependencies: ["RayConcurrency", "RayRPC", "RayProtos"]),
        .executableTarget(name: "RPCBenchmark", dependencies: ["RayRPC", "RPCTestService"]),
        .executableTarget(name: "RPCDemo", dependencies: ["RayRPC", "RPCTestService"]),
        .testTarget(name: "RayConcurrencyTests", dependencies: ["RayConcurrency"]),
        .testTarget(name: "RayRPCTests", dependencies: ["RayRPC", "RayConcurrency", "RPCTestService"]),
        .testTarget(name: "RayYAMLTests", dependencies: ["RayYAML"]),
        .testTarget(name: "RayCommonTests", dependencies: ["RayCommon"]),
        .testTarget(
            name: "RayJobsTests",
            dependencies: ["RayJobs", "RayCommon", .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        .testTarget(name: "RayGCSClientTests", dependencies: ["RayGCSClient", "RayGCS", "RayCommon", "RayProtos"]),
        .testTarget(name: "RayObjectStoreTests", dependencies: ["RayObjectStore", "RayCommon"]),
        .testTarget(name: "RaySchedulingTests", dependencies: ["RayScheduling", "RayCommon"]),
        .testTarget(name: "RayAutoscalingTests", dependencies: ["RayAutoscaling", "RayScheduling", "RayYAML"]),
        .testTarget(name: "RayRayletTests", dependencies: ["RayRaylet", "RayGCS", "RayCommon", "RayRPC", "RayProtos", "RayServices"]),
        // Runs the `ray` executable that `swift build` builds (a dependency on the executable target would
        // make SwiftPM build every executable in the graph, swift-protobuf's protoc included).
        .testTarget(
            name: "RayCLITests",
            dependencies: ["RayRPC", "RayProtos", "RayServices", .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        .testTarget(name: "RayCoreWorkerTests", dependencies: ["RayCoreWorker", "RayCommon", "RayProtos"]),
        // Multi-process tests of the public API: they drive the built ray-integration-app.
        .testTarget(name: "RayTests", dependencies: ["RayRPC", "RayProtos", "RayServices"]),
        .testTarget(name: "RayGCSTests", dependencies: ["RayGCS", "RayServices", "RayRPC", "RayProtos", "RayCommon"]),
    ],
    swiftLanguageModes: [.v6],
    cxxLanguageStandard: .cxx17
)
