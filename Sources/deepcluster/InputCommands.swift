// toy and raw: the report's Tasks 0 and 1.
import ArgumentParser
import Collective
import Clustering
import Datasets
import NN
import Report
import Tensor
import Training
import Foundation

extension InputMethod: ExpressibleByArgument {}
extension CentreInit: ExpressibleByArgument {}

struct ClusterTrainingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Number of clusters: \(ClustersArgument.help) Default: the number of classes in the labels (toy: 3).", valueName: "K|auto|auto:MAX"))
    var clusters: ClustersArgument?
    @Option(help: "Epochs.") var epochs: Int?
    @Option(help: "Global batch size (summed over all ranks). Default: \(Recipe.batchSize), or the number of points when there are fewer.") var batchSize: Int?
    @Option(help: "sgd or adam.") var optimizer: OptimizerKind?
    @Option(help: "Learning rate.") var lr: Float?
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Run directory. Default: runs/<command>-<time>.") var out: String?

    /// The shared flags over the defaults of toy and raw: 30 epochs of Adam at 0.05.
    func inputOptions(initialization: CentreInit) -> InputClusteringOptions {
        var options = InputClusteringOptions()
        options.epochs = epochs ?? 30
        options.batchSize = batchSize ?? Recipe.batchSize
        options.optimizer = optimizer ?? .adam
        options.learningRate = lr ?? 0.05
        options.seed = seed
        options.initialization = initialization
        return options
    }

    func validate() throws {
        try validateTraining(epochs: epochs, batchSize: batchSize, lr: lr ?? 1)
        try clusters?.validate()
    }
}

func checkClusters(_ k: Int, samples: Int) throws {
    if k < 2 || k > samples { throw RunError("--clusters \(k) must be between 2 and the \(samples) samples") }
}

struct ToyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "toy", abstract: "Task 0: soft k-means (softmax weights) on three 2-D blobs over an alpha sweep; writes figure1.svg.")
    @OptionGroup var training: ClusterTrainingOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Comma-separated alphas (softmax sharpness).") var alphas = "1,10"
    @Option(help: "Points per blob.") var points = 200
    @Option(help: "Standard deviation of each blob (centres sit on a circle of radius 4).") var spread = 1.0
    @Option(help: "Centre initialisation: kmeanspp or random.") var initialization: CentreInit = .kmeanspp

    func validate() throws {
        if !(1...Limits.largestPointsPerBlob).contains(points) {
            throw ValidationError("--points (per blob) must be between 1 and \(Limits.largestPointsPerBlob) (got \(points)).")
        }
        try Limits.finite(spread, "--spread", in: 1e-6...1e6, hint: "a positive standard deviation, e.g. 1")
    }

    func run() throws {
        let alphaValues = alphas.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !alphaValues.isEmpty, alphaValues.count == alphas.split(separator: ",").count, alphaValues.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw ValidationError("--alphas must be positive numbers separated by commas (got \(alphas)).")
        }
        try withWorld(runtime) { communicator in
            var options = training.inputOptions(initialization: initialization)
            if let k = training.clusters, k != .count(3) { throw RunError("toy has three blobs: --clusters must be 3") }
            try checkBatch(training.batchSize, ranks: communicator.size)
            options.batchSize = try Limits.batch(training.batchSize, samples: 3 * points, rank: communicator.rank)
            let context = try RunContext(communicator: communicator, directory: try agreedDirectory(training.out, "toy", communicator),
                                         mode: .fresh(RunManifest(command: "toy", arguments: manifestArguments(subcommandArguments))))
            try context.policy.verifySameConfiguration("toy \(context.policy.configHash)")
            try context.writeMachineInfo(data: nil)
            let results = try ToyExperiment.run(context: context, alphas: alphaValues, perBlob: points, spread: spread, options: options)
            if context.isRoot { try RunReport.write(directory: context.directory) }
            if results.contains(where: { !$0.2 }) { throw RunError("a loss went non-finite") }
        }
    }
}

struct RawCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raw", abstract: "Task 1: soft k-means on z-scored MNIST pixels (softmax and free weights) against k-means; writes figure2.svg.")
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var training: ClusterTrainingOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Comma-separated methods: softmax, free, kmeans (k-means always runs as the reference), n2d (UMAP of the input, then a Gaussian mixture on the layout: for features you already have; exact neighbours up to 20,000 points, NN-descent above).") var method = "softmax,free"
    @Option(help: "Softmax sharpness alpha.") var alpha: Float = 10
    @Option(help: "Free weights: projected-gradient step on the weights, in units of 1 / (spread of the distances).") var weightLr: Float = 100
    @Option(help: "k-means restarts.") var restarts = 3
    @Option(help: "Centre initialisation: kmeanspp or random.") var initialization: CentreInit = .kmeanspp

    func validate() throws {
        try Limits.restarts(restarts)
        try Limits.positive(alpha, "--alpha")
        try Limits.positive(weightLr, "--weight-lr")
    }

    func run() throws {
        let methods = try method.split(separator: ",").map { part -> InputMethod in
            guard let m = InputMethod(rawValue: String(part)) else {
                throw ValidationError("unknown method '\(part)': choose from softmax, free, kmeans, n2d.")
            }
            return m
        }
        try withWorld(runtime) { communicator in
            let data = try dataOptions.load(communicator)
            guard data.hasLabels else {
                throw RunError("raw compares soft k-means with k-means against the labels, and \(data.name) has none: give --labels (or --label-column)")
            }
            var options = training.inputOptions(initialization: initialization)
            let resolved = try ClustersArgument.resolve(training.clusters, data: data, seed: training.seed)
            options.clusters = resolved.clusters
            options.alpha = alpha
            options.weightLearningRate = weightLr
            try checkBatch(training.batchSize, ranks: communicator.size)
            options.batchSize = try Limits.batch(training.batchSize, samples: data.count, rank: communicator.rank)
            let context = try RunContext(communicator: communicator, directory: try agreedDirectory(training.out, "raw", communicator),
                                         mode: .fresh(RunManifest(command: "raw", arguments: manifestArguments(subcommandArguments))))
            try context.policy.verifySameConfiguration("raw \(context.policy.configHash) data \(data.count)x\(data.dimension)")
            try context.writeMachineInfo(data: data)
            _ = try RawExperiment.run(context: context, data: data, methods: methods, restarts: restarts, options: options,
                                      chooseClusters: resolved.choose)
            if context.isRoot { try RunReport.write(directory: context.directory) }
        }
    }
}
