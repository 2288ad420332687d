// swift-tools-version:6.0
// DeepClustering: a data-parallel deep clustering trainer (DEC, IDEC, DKM, soft k-means) over MPI.
import PackageDescription

let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "DeepClustering",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "deepcluster", targets: ["deepcluster"]),
        .library(name: "DeepClustering", targets: ["Training", "Report", "Datasets", "Clustering", "NN", "Tensor", "Collective",
                                                   "CollectiveMPI"]),
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
        // oneDNN's bf16 GEMM (Debian's libdnnl-dev) split over CKernels' pool (Tensor's BF16.swift).
        .target(name: "CBF16", dependencies: ["CKernels"], linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg",
                       providers: [.apt(["libjpeg62-turbo-dev"])]),
        // PNG and JPEG decoding behind status codes (both libraries report errors by longjmp).
        .target(name: "CImageCodecs", dependencies: ["CPNG", "CJPEG"]),
        .target(name: "CKernels"),
        .target(name: "CAtomics"),

        // MARK: - The library, one target per module (README: Architecture). A target may use only those it names,
        // so the module boundaries are compile errors, not conventions.
        // MARK: Collectives without MPI
        // The `Communicator` protocol, what the transports need of a world, the single process, threads as ranks.
        .target(name: "Collective", swiftSettings: swift6),

        // MARK: Numerics, data, report (no MPI)
        // Matrices, GEMM through OpenBLAS (float32) and oneDNN (bf16), the elementwise C kernels, the thread pool, seeded random numbers.
        .target(name: "Tensor", dependencies: ["COpenBLAS", "CBF16", "CKernels"], swiftSettings: swift6),
        // Layers over one flat parameter buffer: Dense, the autoencoder, MSE, SGD and Adam.
        .target(name: "NN", dependencies: ["Tensor"], swiftSettings: swift6),
        // k-means++ / Lloyd (restarts spread over the ranks), soft k-means, DEC's assignment and target, metrics.
        .target(name: "Clustering", dependencies: ["Tensor", "Collective"], swiftSettings: swift6),
        // Reading data (IDX and gzip, .npy, CSV, folders of PNG/JPEG images), the embedded MNIST test set, sampling, gathering, augmentation.
        .target(name: "Datasets", dependencies: ["Tensor", "CZlib", "CImageCodecs"], resources: [.copy("Resources")], swiftSettings: swift6),
        // Reads records and files and draws them: SVG, PNG, t-SNE, report.html, metrics.jsonl's records. Knows no
        // trainer, model or communicator.
        .target(name: "Report", dependencies: ["Tensor", "Clustering", "Datasets"], swiftSettings: swift6),

        // MARK: MPI and the gradient transports
        // MPICommunicator, and the gradient transports over any world: local, shared memory, reduction thread, blocking.
        .target(name: "CollectiveMPI", dependencies: ["Collective", "CMPI", "CMPIShims", "CAtomics"], swiftSettings: swift6),

        // MARK: The pipelines
        // The pipelines on top: the model and its transport, pretraining, fine-tuning, checkpoints, bench.
        .target(name: "Training", dependencies: ["Tensor", "NN", "Clustering", "Datasets", "Report", "Collective",
                                                 "CollectiveMPI", "CKernels"],
                swiftSettings: swift6),

        // MARK: - Tools
        .executableTarget(name: "deepcluster",
                          dependencies: ["Training", "Report", "Datasets", "Clustering", "NN", "Tensor", "Collective",
                                         "CollectiveMPI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: swift6),

        // MARK: - Tests
        .target(name: "TestSupport", dependencies: ["Tensor", "NN", "Datasets", "Training"], path: "Tests/TestSupport",
                swiftSettings: swift6),
        .target(name: "MallocCounter", path: "Tests/MallocCounter"),
        .testTarget(name: "DeepClusteringTests",
                    dependencies: ["Training", "Report", "Datasets", "Clustering", "NN", "Tensor", "Collective",
                                   "CollectiveMPI", "TestSupport", "MallocCounter"],
                    swiftSettings: swift6),
    ]
)
