// swift-tools-version:6.0
import PackageDescription

// Hot numeric kernels are compiled for AVX2+FMA (Haswell and newer, every AMD Zen) in release
// builds; without it Swift's SIMD types fall back to libcalls. See README "Build notes".
let hotKernel: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell"], .when(platforms: [.linux], configuration: .release)),
]

// `make fuzz` (tools/fuzz.sh, scratch path .build-fuzz) sets HARMOSE_FUZZ=1: the harness and the
// modules it fuzzes are then compiled with libFuzzer coverage + AddressSanitizer, in ONE
// -sanitize=fuzzer,address flag (SwiftPM's --sanitize=fuzzer --sanitize=address passes two and
// swiftc keeps only the last, dropping coverage). Per target, not -Xswiftc, so that the build-tool
// plugin's host tool (CodeIdentityTool) and StageAPI, which it links, stay uninstrumented.
// Optimised (-O, overflow traps kept) in a debug build (which keeps @testable imports working):
// unoptimised Swift parsed the 100-170 kB run-folder inputs at 5-9 per second.
// Without the variable (make test, make run) these are empty.
let fuzzing = Context.environment["HARMOSE_FUZZ"] == "1"
let fuzzed: [SwiftSetting] = fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address", "-O"])] : []
let fuzzHarness: [SwiftSetting] = fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address", "-O", "-DHARMOSE_LIBFUZZER"])] : []
let fuzzLink: [LinkerSetting] = fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address"])] : []

let package = Package(
    name: "HarmoSE",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "harmose", targets: ["harmose"]),
        .library(name: "HarmoSE", targets: ["HarmoSECLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, libhdf5-dev, libarchive-dev).
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas"),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5"),
        .systemLibrary(name: "CArchive", path: "Sources/CArchive", pkgConfig: "libarchive"),
        // Debian: zlib1g-dev (the tests inflate HDF5Kit's chunks as libhdf5's gzip filter does).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib"),
        // Debian: libdeflate-dev (HDF5Kit deflates chunks with libdeflate: same format, faster).
        .systemLibrary(name: "CDeflate", path: "Sources/CDeflate", pkgConfig: "libdeflate"),
        // Debian: libopenmpi-dev (mpirun from openmpi-bin runs the tests).
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi"),
        // Debian: libsuitesparse-dev (no .pc file), libarpack2-dev.
        .systemLibrary(name: "CSuiteSparse", path: "Sources/CSuiteSparse"),
        .systemLibrary(name: "CARPACK", path: "Sources/CARPACK", pkgConfig: "arpack"),

        // Cores with no knowledge of chemistry.
        .target(name: "Linalg", dependencies: ["COpenBLAS"], swiftSettings: hotKernel + fuzzed),
        .target(name: "HDF5Kit", dependencies: ["CHDF5", "CDeflate", "CHDF5Reader"], swiftSettings: fuzzed),
        // HDF5Kit's reader process: spawning it, passing descriptors, its entry before main.
        .target(name: "CHDF5Reader"),
        .target(name: "Sparse", dependencies: ["CSuiteSparse", "CARPACK", "COpenBLAS", "Linalg"], swiftSettings: fuzzed),
        .target(name: "Autograd", dependencies: ["Linalg", "HDF5Kit", "CKernels"], swiftSettings: hotKernel + fuzzed),
        // Elementwise loops Swift cannot vectorise (a vector square root: Adam's step). Products are
        // never fused into multiply-adds, so the bits are those of the scalar Swift expression.
        .target(name: "CKernels", cSettings: [
            .unsafeFlags(["-ffp-contract=off"]),
            .unsafeFlags(["-march=haswell"], .when(platforms: [.linux], configuration: .release)),
        ]),
        .target(name: "SO3", dependencies: ["Linalg", "Autograd", "Structures"], swiftSettings: hotKernel + fuzzed),

        // The stage API (StageKind, JSONValue, parameter/input specs, Partition, atomic output):
        // what domain modules implement, without linking the runner.
        .target(name: "StageAPI"),
        // Code identity: a build-time digest of the sources of every module HarmoSECLI links, part of
        // every stage fingerprint (Sources/StageAPI/CodeIdentity.swift).
        .executableTarget(name: "CodeIdentityTool", dependencies: ["StageAPI"]),
        .plugin(name: "CodeIdentityPlugin", capability: .buildTool(), dependencies: ["CodeIdentityTool"]),

        // Domain.
        .target(name: "Structures", dependencies: ["Linalg"], swiftSettings: fuzzed),
        .target(name: "Formats", dependencies: ["Structures", "HDF5Kit", "CArchive", "StageAPI"], swiftSettings: fuzzed),
        .target(name: "Graphs", dependencies: ["Structures"], swiftSettings: fuzzed),
        .target(name: "Bands", dependencies: ["Structures", "Linalg", "Sparse", "COpenBLAS", "HDF5Kit", "Formats", "StageAPI", "Plots"], swiftSettings: fuzzed),
        .target(name: "Plots", swiftSettings: fuzzed),
        // Basis sets and overlaps from them (GPAW NAO + PAW, Gaussian); no training.
        .target(name: "Basis", dependencies: ["Structures", "Linalg", "SO3", "Graphs", "Formats", "StageAPI", "HDF5Kit", "CArchive"],
                resources: [.copy("Resources/def2-svp.nw")], swiftSettings: hotKernel + fuzzed),

        // Learning.
        .target(name: "Models", dependencies: ["Structures", "Graphs", "Autograd", "SO3"], swiftSettings: hotKernel + fuzzed),
        .target(name: "Training", dependencies: [
            "Structures", "Formats", "Graphs", "Autograd", "SO3", "Models", "StageAPI", "Plots", "HDF5Kit", "Basis", "Linalg",
        ], swiftSettings: hotKernel + fuzzed),
        .target(name: "Evaluation", dependencies: ["Structures", "Formats", "Bands", "StageAPI", "Plots", "HDF5Kit"], swiftSettings: fuzzed),

        // Timing code of the CLI's bench commands (not in the library modules).
        .target(name: "Benchmarks", dependencies: ["Linalg", "Autograd", "SO3", "Structures", "Bands", "HDF5Kit", "StageAPI"],
                swiftSettings: hotKernel + fuzzed),

        // Orchestration.
        .target(name: "Pipeline", dependencies: ["StageAPI"], swiftSettings: fuzzed),
        .target(name: "Cluster", dependencies: ["CMPI", "StageAPI"], swiftSettings: fuzzed),
        .target(name: "HarmoSECLI", dependencies: [
            "Structures", "Formats", "Graphs", "Bands", "StageAPI", "Pipeline", "SO3", "Autograd",
            "Plots", "Models", "Training", "Evaluation", "Benchmarks", "Cluster", "Basis",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fuzzed, plugins: ["CodeIdentityPlugin"]),
        .executableTarget(name: "harmose", dependencies: ["HarmoSECLI", "Linalg", "Autograd"]),
        // libFuzzer harnesses and their corpus replayer (issue #12; docs/robustness.md): `make fuzz`
        // builds it with -sanitize=fuzzer,address, `make test` replays the seeds.
        .executableTarget(name: "harmose-fuzz", dependencies: [
            "Formats", "Structures", "Bands", "StageAPI", "Pipeline", "Training", "Models", "Autograd", "HarmoSECLI", "CArchive",
        ], path: "Sources/HarmoseFuzz", swiftSettings: fuzzHarness, linkerSettings: fuzzLink),

        // Tests mirror modules; fixtures live in Tests/Fixtures (see its README).
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "LinalgTests", dependencies: ["Linalg", "TestSupport"]),
        .testTarget(name: "HDF5KitTests", dependencies: ["HDF5Kit", "CZlib", "TestSupport"]),
        .testTarget(name: "AutogradTests", dependencies: ["Autograd", "TestSupport"]),
        .testTarget(name: "SO3Tests", dependencies: ["SO3", "Models", "Formats", "TestSupport"]),
        .testTarget(name: "StructuresTests", dependencies: ["Structures", "TestSupport"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "TestSupport"]),
        .testTarget(name: "GraphsTests", dependencies: ["Graphs", "Formats", "TestSupport"]),
        .testTarget(name: "BandsTests", dependencies: ["Bands", "Formats", "Sparse", "TestSupport"]),
        .testTarget(name: "PlotsTests", dependencies: ["Plots", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Formats", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "TestSupport"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Formats", "Bands", "HDF5Kit", "Linalg", "StageAPI", "Structures", "TestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "StageAPI", "HarmoSECLI", "Formats", "Graphs", "Bands", "TestSupport"]),
        .testTarget(name: "BasisTests", dependencies: ["Basis", "Formats", "Structures", "SO3", "StageAPI", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["HarmoSECLI", "TestSupport"]),
        // Hostile input and faults (issue #12): archives, lattices, bounds, messages, partial output.
        .testTarget(name: "HostileTests", dependencies: ["HarmoSECLI", "Formats", "Structures", "Bands", "Pipeline", "StageAPI", "HDF5Kit", "CArchive", "TestSupport"]),
        // mpirun end to end (Debian openmpi-bin); skipped with a message where mpirun is absent.
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", "StageAPI", "HDF5Kit", "Autograd", "TestSupport"]),
    ],
    // Swift 6 language mode, strict concurrency checked by the compiler, for every target and test.
    swiftLanguageModes: [.v6]
)
