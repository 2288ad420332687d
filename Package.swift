// swift-tools-version:6.0
// DeepClustering: a data-parallel deep clustering trainer (DEC, IDEC, DKM, soft k-means) over MPI.
import PackageDescription

let package = Package(
    name: "DeepClustering",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "deepcluster", targets: ["deepcluster"]),
        .library(name: "DeepClustering", targets: ["DeepClustering"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: - C system libraries
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .target(name: "CMPIShims", dependencies: ["CMPI"]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .target(name: "CKernels"),
        .target(name: "CAtomics"),

        // MARK: - Library
        .target(name: "Collective", dependencies: ["CMPI", "CMPIShims", "CAtomics"],
                swiftSettings: [.swiftLanguageMode(.v6)]),
        .target(name: "DeepClustering",
                dependencies: ["Collective", "COpenBLAS", "CZlib", "CKernels"],
                resources: [.copy("Resources")],
                swiftSettings: [.swiftLanguageMode(.v6)]),

        // MARK: - Tools
        .executableTarget(name: "deepcluster",
                          dependencies: ["DeepClustering", "Collective",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: [.swiftLanguageMode(.v6)]),

        // MARK: - Tests
        .target(name: "TestSupport", dependencies: ["DeepClustering"], path: "Tests/TestSupport",
                swiftSettings: [.swiftLanguageMode(.v6)]),
        .target(name: "MallocCounter", path: "Tests/MallocCounter"),
        .testTarget(name: "DeepClusteringTests",
                    dependencies: ["DeepClustering", "Collective", "TestSupport", "MallocCounter"],
                    swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
