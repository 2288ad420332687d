// The recipe: every default of the training pipelines in one place. The option structs start from it, the CLI's
// flags take their defaults from it, and the README's accuracy table names it; change a default here and every
// caller gets the same run. The option structs hold the schedule of data up to fullScheduleSamples; the commands
// resolve it for the data's size (pretrainEpochs(samples:), holdTarget(samples:), epochs(samples:)). Not the per-invocation settings (threads, the transport): those are the runtime's.
import Clustering
import Foundation
import Datasets
import NN

public enum Recipe {
    // MARK: - Pretraining
    public static let widths = [784, 500, 500, 2000, 10]
    public static let pretrainEpochs = 100
    /// The epoch counts above (pretraining, the hold, fine-tuning's cap) are those of data up to this many samples.
    /// Above it an epoch holds more steps, and fewer epochs are needed: full MNIST's start, pretrained 10 / 25 / 40 /
    /// 60 epochs, scored ACC 0.819 / 0.957 / 0.970 / 0.974 (100: 0.976), and its fine-tuning gained nothing after
    /// epoch 10 of the hold and epoch 10 after it (`Launch/pretrain-study`; README: Accuracy).
    public static let fullScheduleSamples = 10_000
    /// Pretraining epochs shrink as (fullScheduleSamples / N)^(1/3): 52 on 70,000 samples (3.6 M seen, 1 M at 10,000).
    public static func pretrainEpochs(samples: Int) -> Int { shrunk(pretrainEpochs, samples: samples, exponent: 1.0 / 3) }
    /// The hold and fine-tuning's cap shrink as (fullScheduleSamples / N)^(1/2): 11 and 38 on 70,000 samples.
    public static func holdTarget(samples: Int) -> Int { shrunk(holdTarget, samples: samples, exponent: 0.5) }
    public static func epochs(samples: Int) -> Int { shrunk(epochs, samples: samples, exponent: 0.5) }
    static func shrunk(_ epochs: Int, samples: Int, exponent: Double) -> Int {
        guard samples > fullScheduleSamples, epochs > 0 else { return epochs }
        return max(1, Int((Double(epochs) * pow(Double(fullScheduleSamples) / Double(samples), exponent)).rounded()))
    }
    /// What the shrinking made of the defaults a run took, each with the flag that sets it (`pretrainFlag`: the
    /// pretraining epochs' flag, nil when they were given or there is no pretraining; `hold`, `cap`: those defaults
    /// taken); nil at or below fullScheduleSamples, or when every value was given.
    public static func shrinkNote(samples: Int, pretrainFlag: String?, hold: Bool, cap: Bool) -> String? {
        guard samples > fullScheduleSamples else { return nil }
        var parts: [String] = []
        if let pretrainFlag { parts.append("\(pretrainEpochs(samples: samples)) pretraining epochs (\(pretrainFlag))") }
        if hold { parts.append("a hold of \(holdTarget(samples: samples)) epochs (--hold-target)") }
        if cap { parts.append("at most \(epochs(samples: samples)) fine-tuning epochs (--epochs)") }
        guard !parts.isEmpty else { return nil }
        return "\(samples) samples: \(parts.joined(separator: ", ")): the schedule of \(fullScheduleSamples) samples or fewer, "
            + "shortened for larger data (an epoch holds more steps; README: Accuracy)"
    }
    public static let batchSize = 256
    public static let pretrainOptimizer = OptimizerKind.adam
    /// The pretraining learning rate over the epochs: constant (as DEC and N2D train).
    public static let pretrainSchedule = LearningRateSchedule.constant
    public static let pretrainLearningRate: Float = 0.001
    public static let weightInit = WeightInit.glorot
    /// Denoising: each input zeroed with this probability.
    public static let maskRate: Float = 0.2
    /// Shift and rotation of every sample, where the samples are square images (else none).
    public static let augmentation = Augmentation(shift: 0.1, rotate: 10)

    // MARK: - The start and fine-tuning
    public static let start = ClusterStart.n2d
    public static let restarts = 20
    /// Which result a run keeps: the better of the start and the fine-tuned one, by neighbour information (ResultGuard).
    public static let keep = KeptResult.auto
    /// The guard's criterion: each sample's neighbours in the input space, for up to this many samples.
    public static let guardNeighbours = 15
    public static let guardQueries = 10_000
    /// The fine-tuned result is kept unless its neighbour information is more than this fraction below the start's.
    public static let guardMargin = 0.005
    public static var guardMarginText: String { String(format: "%.1f%%", 100 * guardMargin) }
    /// Fine-tuning epochs that fit the start's target (DEC's sharpening of N2D's posteriors) before the target is
    /// recomputed from the model (DEC's self-training).
    public static let holdTarget = 30
    /// DEC and IDEC fit only the samples whose target's largest probability reaches this (DECObjective).
    public static let confidence: Float = 0
    public static let umap = UMAPOptions()
    public static let epochs = 100
    public static let optimizer = OptimizerKind.sgd
    public static let learningRate: Float = 0.01
    /// Stop when fewer than this fraction of the labels change between two target updates.
    public static let tolerance = 0.001
    /// The weight of the clustering term beside reconstruction: IDEC's paper's 0.1; DKM's k-means term is in squared
    /// embedding units, hundreds of times the per-pixel MSE, and at 0.1 the embedding collapses to one cluster.
    public static func gamma(_ method: DeepMethod) -> Float { method == .dkm ? 1e-4 : 0.1 }
    /// DKM: alpha grows geometrically from alphaStart to alphaEnd over the epochs.
    public static let alphaStart: Float = 0.1
    public static let alphaEnd: Float = 100
    /// `--clusters auto`: K of least ICL from 2 up to this (or a tenth of the samples), on the N2D layout (ClusterCount).
    public static let largestClusters = ClusterCountOptions().largest
    public static func clusterCount(largest: Int = largestClusters, seed: UInt64) -> ClusterCountOptions {
        var options = ClusterCountOptions()
        options.largest = largest
        options.seed = seed
        return options
    }
    /// Checkpoints once 5 minutes have passed since the last (and after a phase's last epoch, at a stop signal).
    public static let checkpointEvery = CheckpointCadence.seconds(300)
    /// `--precision`: auto takes bf16 where every rank's CPU multiplies bf16 faster than float32 (AMX, AMD's AVX-512
    /// BF16: PrecisionChoice).
    public static let precision = PrecisionSetting.auto
    public static let tsnePoints = 2000
    public static let tsneIterations = 1000

    /// The recipe's augmentation for `data`: on square images, none elsewhere.
    public static func augmentation(for data: DataSet) -> Augmentation {
        Augmentation.canMove(data) ? augmentation : .none
    }
}

public enum DeepMethod: String, Sendable, CaseIterable { case dec, idec, dkm }

/// How a learning rate moves over a phase's steps.
public enum LearningRateSchedule: String, Sendable, CaseIterable {
    /// The rate as given, every step.
    case constant
    /// From the rate down to 0 along half a cosine over all the phase's steps (Loshchilov and Hutter 2017, without
    /// restarts): the rate at `step` of `total` is rate x (1 + cos(pi step / total)) / 2.
    case cosine

    public func rate(_ base: Float, step: Int, total: Int) -> Float {
        switch self {
        case .constant: return base
        case .cosine:
            let progress = min(1, Double(step) / Double(max(total, 1)))
            return Float(Double(base) * (1 + cos(Double.pi * progress)) / 2)
        }
    }
}

public struct PretrainOptions: Sendable {
    public var epochs = Recipe.pretrainEpochs
    public var batchSize = Recipe.batchSize
    public var optimizer = Recipe.pretrainOptimizer
    public var learningRate = Recipe.pretrainLearningRate
    public var seed: UInt64 = 0
    public var widths = Recipe.widths
    public var weightInit = Recipe.weightInit
    /// Denoising: each input zeroed with this probability (the target stays clean).
    public var maskRate = Recipe.maskRate
    /// A random shift and rotation of every sample (input and target alike); the mask, if any, on top.
    /// nil: the recipe's for the data (on square images only).
    public var augmentation: Augmentation? = nil
    public var overlap = true
    public var checkpointEvery = Recipe.checkpointEvery
    public var schedule = Recipe.pretrainSchedule
    /// The products' arithmetic (resolved from --precision by PrecisionChoice); the fine-tuning of `dec` keeps it.
    public var precision = PrecisionChoice.float32
    public var maxSteps: Int? = nil
    /// Fault injection for tests: this rank's gradient becomes NaN at this step.
    public var poison: (step: Int, rank: Int)? = nil
    /// Tests: one process computes the shares of this many ranks and sums them as they would (ShareEmulation).
    public var emulation: ShareEmulation? = nil
    /// Tests: the first step's reduced gradient (and an emulation's shares, at PATH.shares) go to this file.
    public var gradientDump: String? = nil
    public init() {}
}

public struct DECOptions: Sendable {
    public var method = DeepMethod.dec
    public var clusters = 10
    /// Choose `clusters` from the data (`--clusters auto`) with these settings; nil: `clusters` as given.
    public var chooseClusters: ClusterCountOptions? = nil
    public var epochs = Recipe.epochs
    public var batchSize = Recipe.batchSize
    public var optimizer = Recipe.optimizer
    public var learningRate = Recipe.learningRate
    public var seed: UInt64 = 0
    /// Steps between target updates; nil = once per epoch.
    public var updateInterval: Int? = nil
    public var tolerance = Recipe.tolerance
    public var restarts = Recipe.restarts
    /// How the starting clusters are found; with n2d, `umap` configures the layout.
    public var start = Recipe.start
    /// Which of the start and the fine-tuned clustering the run keeps and writes (ResultGuard).
    public var keep = Recipe.keep
    /// Epochs that keep the first target (the start's) before the passes recompute it; no label-change stop before.
    public var holdTarget = Recipe.holdTarget
    /// DEC, IDEC: the samples whose target's largest probability is below this take no part in the clustering term.
    public var confidence = Recipe.confidence
    public var umap = Recipe.umap
    /// IDEC and DKM: weight of the clustering term; nil = the recipe's for the method.
    public var gamma: Float? = nil
    public var alphaStart = Recipe.alphaStart
    public var alphaEnd = Recipe.alphaEnd
    /// Epochs whose embedding is kept for Figure 4. Default: 0 and the powers of two, of which the figure shows
    /// the start, the middle and the end; explicit (`--snapshots`): all of them, and the end.
    public var snapshotEpochs: Set<Int> = Set([0] + (0..<16).map { 1 << $0 })
    public var snapshotsExplicit = false
    /// t-SNE of Figure 4: points in the seeded subsample (0 = no Figure 4) and iterations.
    public var tsnePoints = Recipe.tsnePoints
    public var tsneIterations = Recipe.tsneIterations
    public var checkpointEvery = Recipe.checkpointEvery
    /// Fine-tuning on augmented batches (the target distribution P stays that of the clean data).
    /// nil: the recipe's for the data (on square images only).
    public var augmentation: Augmentation? = nil
    /// Tests: one process computes the shares of this many ranks and sums them as they would (ShareEmulation).
    public var emulation: ShareEmulation? = nil
    public init() {}

    /// The clustering term's weight in effect.
    public var clusteringWeight: Float { gamma ?? Recipe.gamma(method) }
}

// MARK: - The settings as flags (config.json and the report's table show what a user would type)

func widthsText(_ widths: [Int]) -> String { widths.map(String.init).joined(separator: "-") }

func augmentationText(_ augmentation: Augmentation?) -> String {
    augmentation?.description ?? "\(Recipe.augmentation) on square images, else none"
}

extension PretrainOptions {
    /// Every setting as (flag, value); `inDEC`: the names `dec` gives them (--pretrain-epochs, ...). Test hooks are left out.
    public func flags(inDEC: Bool = false) -> [(flag: String, value: String)] {
        let p = inDEC ? "--pretrain-" : "--"
        return [(p + "epochs", "\(epochs)"), ("--batch-size", "\(batchSize)"), (p + "optimizer", optimizer.rawValue),
                (p + "lr", "\(learningRate)"), (p + "schedule", schedule.rawValue), ("--seed", "\(seed)"), ("--widths", widthsText(widths)),
                ("--initialization", weightInit.rawValue), ("--mask", "\(maskRate)"), ("--augment", augmentationText(augmentation)),
                ("--checkpoint-every", "\(checkpointEvery)"), ("--precision", precision.flagValue)]
            + (overlap ? [] : [("--no-overlap", "")]) + (maxSteps.map { [("--max-steps", "\($0)")] } ?? [])
    }
}

extension DECOptions {
    /// Every setting as (flag, value), defaults included.
    public var flags: [(flag: String, value: String)] {
        var flags: [(flag: String, value: String)] = [
            ("--method", method.rawValue), ("--clusters", chooseClusters.map { "auto:\($0.largest)" } ?? "\(clusters)"), ("--epochs", "\(epochs)"), ("--batch-size", "\(batchSize)"),
            ("--optimizer", optimizer.rawValue), ("--lr", "\(learningRate)"), ("--seed", "\(seed)"),
            ("--update-interval", updateInterval.map(String.init) ?? "once per epoch"), ("--tol", "\(tolerance)"),
            ("--restarts", "\(restarts)"), ("--start", start.rawValue), ("--keep", keep.rawValue), ("--hold-target", "\(holdTarget)"), ("--confidence", "\(confidence)"), ("--augment", augmentationText(augmentation)),
            ("--checkpoint-every", "\(checkpointEvery)"), ("--tsne-points", "\(tsnePoints)"), ("--tsne-iterations", "\(tsneIterations)"),
            ("--snapshots", snapshotsExplicit ? snapshotEpochs.sorted().map(String.init).joined(separator: ",") : "start, middle, end"),
        ]
        if start == .n2d { flags.append(("--umap-epochs", "\(umap.epochs)")) }
        if method != .dec { flags.append(("--gamma", "\(clusteringWeight)")) }
        return flags
    }
}
