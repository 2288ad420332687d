// dec (the main job) and predict.
import ArgumentParser
import Collective
import Clustering
import Datasets
import NN
import Report
import Tensor
import Training
import Foundation

extension DeepMethod: ExpressibleByArgument {}

struct DECCommand: TrainingCommand {
    static let resumableOptions = ["--lr", "--epochs", "--checkpoint-every", "--pretrain-lr", "--pretrain-epochs"]
    static let configuration = CommandConfiguration(
        commandName: "dec",
        abstract: "Task 2, the main job: pretrain the autoencoder, find the start on the embedding (N2D by default, or k-means++), then DEC/IDEC/DKM fine-tuning.",
        discussion: """
            With no flags: 100 epochs of denoising pretraining, the N2D start (UMAP + Gaussian mixture on the embedding),
            and up to 100 epochs of DEC on the embedded 10k MNIST set, pretraining and fine-tuning on augmented batches
            (--augment shift=0.1,rotate=10), on however many ranks it was started with (on more than 10,000
            samples, fewer epochs of each: see --pretrain-epochs). The classic recipe (DEC as published):
            --start kmeans --augment none --epochs 200. K is the labels' class count; with --clusters auto
            (the default without labels) it is chosen from the data after pretraining, by the least ICL of a Gaussian
            mixture on the UMAP layout of the embedding, and printed with the criterion for every K tried. Writes
            model.bin, autoencoder.bin, metrics.jsonl, assignments.csv, figure3.svg, figure4.svg (t-SNE), confusion.svg,
            clusters.svg and report.html into the run directory.
            """)
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var session: SessionOptions
    @Option(help: "dec, idec or dkm.") var method: DeepMethod = .dec
    @Option(help: ArgumentHelp("Clusters: \(ClustersArgument.help) Default: the number of classes in the labels; without labels, auto. With auto, clusters that fine-tuning leaves empty are dropped.", valueName: "K|auto|auto:MAX"))
    var clusters: ClustersArgument?
    @Option(help: "Fine-tuning epochs (upper limit; training stops earlier when fewer than --tol of the labels change). Default: \(Recipe.epochs) up to \(Recipe.fullScheduleSamples) samples, fewer above (\(Recipe.epochs(samples: 70_000)) on 70,000).") var epochs: Int?
    @Option(help: "Pretraining epochs. Default: \(Recipe.pretrainEpochs) up to \(Recipe.fullScheduleSamples) samples, fewer above (\(Recipe.pretrainEpochs(samples: 70_000)) on 70,000; README: Accuracy).") var pretrainEpochs: Int?
    @Option(help: "Skip pretraining: load this autoencoder.bin.") var pretrained: String?
    @Option(help: "Global batch size (summed over all ranks). Default: \(Recipe.batchSize), or the number of samples when there are fewer.") var batchSize: Int?
    @Option(help: "Fine-tuning optimizer: sgd or adam.") var optimizer = Recipe.optimizer
    @Option(help: "Fine-tuning learning rate.") var lr = Recipe.learningRate
    @Option(help: "Pretraining optimizer.") var pretrainOptimizer = Recipe.pretrainOptimizer
    @Option(help: "Pretraining learning rate.") var pretrainLr = Recipe.pretrainLearningRate
    @Option(help: "Pretraining learning rate over the epochs: constant, or cosine (from --pretrain-lr down to 0 over all of pretraining).")
    var pretrainSchedule = Recipe.pretrainSchedule
    @Option(help: "Denoising pretraining: probability of zeroing each input pixel.") var mask = Recipe.maskRate
    @Option(help: "Augmentation in pretraining and fine-tuning (square images; the target distribution uses the clean data): none, or shift=F,rotate=DEGREES, e.g. shift=0.1,rotate=10 (see pretrain --help). Default: shift=0.1,rotate=10 on square images, none on other data.")
    var augment: String?
    @Option(help: "Encoder widths, input first. Default: the data's width, then 500-500-2000-10.") var widths: String?
    @Option(help: "Weight initialisation: glorot or fanin.") var initialization = Recipe.weightInit
    @Option(help: "Steps between target-distribution updates. Default: once per epoch.") var updateInterval: Int?
    @Option(help: "Stop when fewer than this fraction of labels change between updates.") var tol = Recipe.tolerance
    @Option(help: "k-means restarts on the embedding (spread over the ranks).") var restarts = Recipe.restarts
    @Option(help: "How the clusters fine-tuning starts from are found on the pretrained embedding: n2d (UMAP of the embedding to 10 dimensions, 20 neighbours, then a full-covariance Gaussian mixture: McConville et al. 2020), or kmeans (k-means++ and Lloyd, DEC as published).")
    var start = Recipe.start
    @Option(help: "Which clustering the run keeps and writes (assignments.csv, q.npy, model.bin, the report's headline): auto (the better of the start and the fine-tuned result by neighbour information in the input space, decided without labels: the fine-tuned one unless it scores more than \(Recipe.guardMarginText) below the start), fine-tuned (always the fine-tuned model's, DEC as published) or start.")
    var keep = Recipe.keep
    @Option(help: "Fine-tuning epochs that fit the start's own target (DEC's sharpened target of N2D's mixture posteriors, or of the k-means centres' soft assignment) before the target is recomputed from the model (DEC's self-training); no label-change stop before. 0: DEC as published. Default: \(Recipe.holdTarget) up to \(Recipe.fullScheduleSamples) samples, fewer above (\(Recipe.holdTarget(samples: 70_000)) on 70,000).")
    var holdTarget: Int?
    @Option(help: "DEC, IDEC: only samples whose target's largest probability is at least this take part in the clustering term (self-training on confident samples; the set grows as the targets sharpen). 0: every sample (DEC as published).")
    var confidence = Recipe.confidence
    @Option(help: "n2d: UMAP layout epochs.") var umapEpochs = Recipe.umap.epochs
    @Option(help: "IDEC/DKM: weight of the clustering term. Default 0.1 for IDEC, 1e-4 for DKM (its k-means term is in squared embedding units, hundreds of times the per-pixel MSE; at 0.1 the embedding collapses to one cluster).") var gamma: Float?
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: ArgumentHelp("Write a checkpoint (autoencoder.bin while pretraining, dec-state.bin while fine-tuning) every N epochs, or once a time such as 90s, 5m or 1h has passed since the last; also after each phase's last epoch and at a stop signal. Default: \(Recipe.checkpointEvery).", valueName: "N|time"))
    var checkpointEvery = Recipe.checkpointEvery.description
    @Option(help: "Epochs whose embedding Figure 4 maps with t-SNE, e.g. 0,50,100,200 (the end is always added). Default: the start, the middle and the end.")
    var snapshots: String?
    @Option(help: "Points in Figure 4's seeded t-SNE subsample; 0 skips Figure 4.") var tsnePoints = Recipe.tsnePoints
    @Option(help: ArgumentHelp(FlagHelp.precision))
    var precision = Recipe.precision
    @Option(help: "t-SNE iterations.") var tsneIterations = Recipe.tsneIterations
    @Option(help: ArgumentHelp("Tests: one process computes the shares of N ranks in pretraining and fine-tuning and sums them in rank order (run it with --threads 1).", visibility: .hidden))
    var debugEmulateRanks: Int?
    @Option(help: "Run directory. Default: runs/dec-<time>.") var out: String?

    func validate() throws {
        try validateTraining(epochs: epochs, batchSize: batchSize, lr: lr)
        if pretrained == nil { try validateTraining(epochs: pretrainEpochs, batchSize: batchSize, lr: pretrainLr, prefix: "pretrain-") }
        try clusters?.validate()
        if let updateInterval, updateInterval < 1 { throw ValidationError("--update-interval must be at least 1.") }
        try Limits.restarts(restarts)
        try Limits.augmentation(augment)
        try Limits.finite(tol, "--tol", in: 0...1, hint: "a fraction between 0 and 1, e.g. 0.001")
        try Limits.finite(Double(confidence), "--confidence", in: 0...1, hint: "a probability between 0 and 1, e.g. 0.9")
        if let holdTarget, holdTarget < 0 { throw ValidationError("--hold-target must be 0 or more epochs (got \(holdTarget)).") }
        if let gamma { try Limits.positive(gamma, "--gamma") }
        try Limits.memory(widths: try plannedWidths(widths), batchSize: batchSize ?? Recipe.batchSize)
        if !(0..<1).contains(mask) { throw ValidationError("--mask must be in [0, 1).") }
        _ = try plannedWidths(widths)
        do { _ = try CheckpointCadence(parsing: checkpointEvery) } catch { throw ValidationError("\(error)") }
        if let debugEmulateRanks, !(2...64).contains(debugEmulateRanks) { throw ValidationError("--debug-emulate-ranks must be in 2...64.") }
        _ = try snapshotEpochs()
        if !(0...Limits.largestTSNEPoints).contains(tsnePoints) || !(1...100_000).contains(tsneIterations) {
            throw ValidationError("--tsne-points must be 0 to \(Limits.largestTSNEPoints) (exact t-SNE keeps n x n matrices) and --tsne-iterations 1 to 100000.")
        }
    }

    func snapshotEpochs() throws -> Set<Int>? {
        guard let snapshots else { return nil }
        let values = snapshots.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? -1) >= 0 }) else {
            throw ValidationError("--snapshots must be epochs >= 0 separated by commas, e.g. 0,50,100 (got \(snapshots)).")
        }
        return Set(values.map { $0! })
    }

    func train(_ communicator: Communicator, directory: String, mode: RunContext.Mode) throws {
        do {
            try checkBatch(batchSize, ranks: communicator.size)
            let loadStarted = Clock.now
            let data = try dataOptions.load(communicator)
            let loadSeconds = Clock.now - loadStarted
            let batchSize = try Limits.batch(batchSize, samples: data.count, rank: communicator.rank)
            var pretrain = PretrainOptions()
            (pretrain.epochs, pretrain.batchSize, pretrain.optimizer, pretrain.learningRate) = (pretrainEpochs ?? Recipe.pretrainEpochs(samples: data.count), batchSize, pretrainOptimizer, pretrainLr)
            pretrain.schedule = pretrainSchedule
            (pretrain.seed, pretrain.widths, pretrain.weightInit) = (seed, try dataWidths(widths, data), initialization)
            (pretrain.maskRate, pretrain.overlap) = (mask, !runtime.noOverlap)
            pretrain.checkpointEvery = try CheckpointCadence(parsing: checkpointEvery)
            pretrain.augmentation = try Limits.augmentation(augment, data: data, rank: communicator.rank)
            guard pretrain.widths[0] == data.dimension else {
                throw RunError("--widths starts at \(pretrain.widths[0]) but the data has \(data.dimension) dimensions")
            }
            var options = DECOptions()
            options.method = method
            let resolved = try ClustersArgument.resolve(clusters, data: data, seed: seed)
            (options.clusters, options.chooseClusters) = (resolved.clusters, resolved.choose)
            options.epochs = epochs ?? Recipe.epochs(samples: data.count)
            options.batchSize = batchSize
            options.optimizer = optimizer
            options.learningRate = lr
            options.seed = seed
            options.updateInterval = updateInterval
            options.tolerance = tol
            options.restarts = restarts
            options.start = start
            options.keep = keep
            options.holdTarget = holdTarget ?? Recipe.holdTarget(samples: data.count)
            options.confidence = confidence
            options.umap.epochs = umapEpochs
            options.gamma = gamma
            options.checkpointEvery = try CheckpointCadence(parsing: checkpointEvery)
            options.augmentation = pretrain.augmentation
            if let explicit = try snapshotEpochs() {
                options.snapshotEpochs = explicit
                options.snapshotsExplicit = true
            }
            if let emulated = debugEmulateRanks {
                try checkBatch(batchSize, ranks: emulated)
                (pretrain.emulation, options.emulation) = (ShareEmulation(ranks: emulated), ShareEmulation(ranks: emulated))
            }
            options.tsnePoints = tsnePoints
            options.tsneIterations = tsneIterations
            if let pretrained, !FileManager.default.fileExists(atPath: pretrained) {
                throw RunError("--pretrained \(pretrained): file not found")
            }
            pretrain.precision = try PrecisionChoice.resolve(precision, communicator: communicator)
            // Epochs chosen from the data's size and what `auto` meant go into the manifest, so a resumed run keeps them.
            var chosen = pretrain.precision.recorded
            if data.count > Recipe.fullScheduleSamples {
                if pretrained == nil && pretrainEpochs == nil { chosen.append(("--pretrain-epochs", "\(pretrain.epochs)")) }
                if holdTarget == nil { chosen.append(("--hold-target", "\(options.holdTarget)")) }
                if epochs == nil { chosen.append(("--epochs", "\(options.epochs)")) }
            }
            let context = try RunContext(communicator: communicator, directory: directory, mode: mode.recording(chosen))
            context.policy.epochBudget = session.stopAfterEpochs
            context.loadSeconds = loadSeconds
            try context.policy.verifySameConfiguration("dec \(context.policy.configHash) data \(data.count)x\(data.dimension)")
            context.policy.precision = pretrain.precision
            context.say(pretrain.precision.description)
            try context.writeMachineInfo(data: data)
            if let note = resolved.note { context.say(note) }
            if let note = Recipe.shrinkNote(samples: data.count, pretrainFlag: pretrained == nil && pretrainEpochs == nil ? "--pretrain-epochs" : nil,
                                            hold: holdTarget == nil, cap: epochs == nil) { context.say(note) }
            let k = options.chooseClusters.map { "chosen from the data (2 to \(ClusterCount.largestTried($0, count: data.count)))" }
                ?? "\(options.clusters)"
            context.say("\(method.rawValue.uppercased()) on \(data.name): \(data.count) samples, K = \(k), \(communicator.size) rank(s), "
                        + "BLAS threads \(BLAS.threads) -> \(context.directory)")
            _ = try DECExperiment.run(context: context, data: data, pretrain: pretrain, options: options, pretrained: pretrained)
        }
    }
}

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Assign samples to clusters with a model.bin written by `dec`.",
        discussion: """
            Writes --output (index,cluster[,label]; for a folder of images
            index,path,cluster[,label]) and beside it OUTPUT-stem.embedding.npy (N x E, float32) and
            OUTPUT-stem.q.npy (N x K soft assignments), and prints ACC/NMI/ARI when the data has labels. New data is
            normalised as the model's training data was (model.bin keeps the normalisation of a .npy or CSV run).
              deepcluster predict --model runs/dec-1/model.bin --data new.csv --output new-clusters.csv
            """)
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "The model.bin of a dec run.") var model: String
    @Option(help: "Where to write the CSV (index,[path,]cluster[,label]); the .npy files go beside it.") var output = "assignments.csv"
    @Flag(help: "Replace the outputs when they exist already (never the model or a data file).") var force = false

    var outputs: [String] {
        let stem = output.lowercased().hasSuffix(".csv") ? String(output.dropLast(4)) : output
        return [output, stem + ".embedding.npy", stem + ".q.npy"]
    }

    func validate() throws {
        func resolved(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }
        var inputs = [model] + [dataOptions.labels].compactMap { $0 }
        if let data = dataOptions.data {
            inputs += [data] + ((try? FileManager.default.contentsOfDirectory(atPath: data))?.map { data + "/" + $0 } ?? [])
        }
        for target in outputs {
            if inputs.contains(where: { resolved($0) == resolved(target) }) {
                throw ValidationError("--output \(output) would write \(target), one of the inputs (the model or a data file); choose another path.")
            }
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory) {
                if isDirectory.boolValue { throw ValidationError("\(target) is a directory; give --output a file path, e.g. \(output)/predicted.csv.") }
                if !force {
                    throw ValidationError("\(target) exists already (perhaps a run's own output); choose another --output, or pass --force to replace it.")
                }
            }
        }
    }

    func run() throws {
        try withWorld(runtime) { communicator in
            // An image folder's default size follows the model's input width (it is checked again on loading).
            let expected = (try? Checkpoint.load(model))?.widths.first
            let data = try dataOptions.load(communicator, raw: true, expectedDimension: expected)
            let directory = (output as NSString).deletingLastPathComponent
            let context = try RunContext(communicator: communicator, directory: directory.isEmpty ? "." : directory, quiet: false)
            let result = try Predictor.assign(context: context, data: data, modelPath: model)
            if communicator.rank == 0 {
                let k = result.q.count / max(data.count, 1), e = result.embedding.count / max(data.count, 1)
                try DECExperiment.writeAssignments(outputs[0], result.assignments, data: data)
                try AtomicFile.write(NumPyArray.encode(result.embedding, shape: [data.count, e]), to: outputs[1])
                try AtomicFile.write(NumPyArray.encode(result.q, shape: [data.count, k]), to: outputs[2])
                print("wrote \(result.assignments.count) assignments to \(outputs[0]), the embedding to \(outputs[1]), the soft assignments to \(outputs[2])")
                let (sizes, small) = DataSet.clusterSizes(result.assignments, clusters: k)
                print("cluster sizes: " + sizes.enumerated().map { "c\($0.offset) \($0.element)" }.joined(separator: ", "))
                if !small.isEmpty { print("note: cluster(s) \(small.map(String.init).joined(separator: ", ")) hold under 1% of these samples") }
                if result.scores.known { print(result.scores.text) }
            }
        }
    }
}
