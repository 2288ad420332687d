// Pretraining the autoencoder on reconstruction (MSE), data-parallel as DESIGN.md fixes it.
// The loop reads top to bottom: sample, gather, forward, zero, loss, backward, reduce, update, log.
import Clustering
import Collective
import CollectiveMPI
import Datasets
import Foundation
import NN
import Report
import Tensor

public struct PretrainOptions: Sendable {
    public var epochs = 100
    public var batchSize = 256
    public var optimizer: OptimizerKind = .adam
    public var learningRate: Float = 0.001
    public var seed: UInt64 = 0
    public var widths = [784, 500, 500, 2000, 10]
    public var weightInit: WeightInit = .glorot
    /// Denoising: each input zeroed with this probability (the target stays clean).
    public var maskRate: Float = 0
    /// A random shift and rotation of every sample (input and target alike); the mask, if any, on top.
    public var augmentation = Augmentation.none
    public var overlap = true
    public var checkpointEvery = 1
    public var maxSteps: Int? = nil
    /// Fault injection for tests: this rank's gradient becomes NaN at this step.
    public var poison: (step: Int, rank: Int)? = nil
    /// Tests: one process computes the shares of this many ranks and sums them as they would (ShareEmulation).
    public var emulation: ShareEmulation? = nil
    /// Tests: the first step's reduced gradient (and an emulation's shares, at PATH.shares) go to this file.
    public var gradientDump: String? = nil
    public init() {}

    public init(epochs: Int, batchSize: Int, optimizer: OptimizerKind, learningRate: Float, seed: UInt64, widths: [Int],
                weightInit: WeightInit, maskRate: Float, overlap: Bool) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.optimizer = optimizer
        self.learningRate = learningRate
        self.seed = seed
        self.widths = widths
        self.weightInit = weightInit
        self.maskRate = maskRate
        self.overlap = overlap
    }
}

public final class Pretrainer {
    public let context: RunContext
    public let data: DataSet
    public let options: PretrainOptions
    public let model: Model
    public let optimizer: Optimizer
    public let gatherer: BatchGatherer
    public var sampler: Sampler
    public private(set) var epoch = 0
    public private(set) var step = 0
    public private(set) var lastStepExposed = 0.0
    /// Batches of `epoch` already trained (non-zero after a resume from a checkpoint written on a stop signal), and
    /// that epoch's sums so far (loss, seconds waited on the reduction, seconds).
    public private(set) var batchInEpoch = 0
    private var epochSoFar = (loss: 0.0, comm: 0.0, seconds: 0.0)
    public let stopAgreement = StopAgreement()
    private let shares: ShareGradients?
    private var dumped = false

    public init(context: RunContext, data: DataSet, options: PretrainOptions, model: Model? = nil) throws {
        self.context = context
        self.data = data
        self.options = options
        if options.emulation != nil, context.ranks > 1 { throw RunError("an emulation of several ranks runs on one rank") }
        try options.augmentation.check(data)
        let maxRows = largestShare(total: options.batchSize, size: options.emulation?.ranks ?? context.ranks)
        let model = try model ?? Model(widths: options.widths, clusters: 1, maxRows: maxRows,
                                       communicator: context.communicator, overlap: options.overlap)
        self.model = model
        optimizer = Optimizer(kind: options.optimizer, learningRate: options.learningRate, range: self.model.autoencoder.range)
        gatherer = BatchGatherer(dims: data.dimension, maxRows: maxRows, transform: FeatureTransform(data: data, normalization: .unit))
        sampler = Sampler(count: data.count, globalBatch: options.batchSize, seed: options.seed,
                          rank: context.rank, ranks: context.ranks)
        shares = options.emulation.map { ShareGradients($0, count: model.all.count) }
    }

    /// Fresh weights from the seed, identical on every rank.
    public func initializeWeights() throws {
        var rng = Xoshiro256(seed: options.seed, stream: 0x494E4954)
        model.autoencoder.initialize(model.store, scheme: options.weightInit, rng: &rng)
        try model.synchronize(context.communicator)
    }

    /// One global batch: returns the batch's summed loss (all ranks).
    @discardableResult
    public func trainStep(batch b: Int) throws -> Double {
        let store = model.store
        if let shares {
            for r in 0..<shares.emulation.ranks {
                let (global, local) = sampler.batch(b, rank: r, of: shares.emulation.ranks)
                try computeGradients(global: global, local: local, rank: r)
                shares.keep(model.transport.gradients, range: model.all, rank: r)
            }
            shares.combine(into: model.transport.gradients, range: model.all)
        } else {
            let (global, local) = sampler.batch(b)
            try computeGradients(global: global, local: local, rank: context.rank)
        }
        stopAgreement.tally(model, step: step)
        if let path = options.gradientDump, !dumped, context.isRoot {
            try GradientDump.write(store, range: model.parameterRange, to: path)
            try shares?.write(to: path + ".shares", range: model.parameterRange)
            dumped = true
        }
        let total = Double(model.statistics[0])
        let finite = optimizer.update(store)
        try context.requireFinite(total, quantity: "reconstruction loss", step: step, gradients: finite)
        step += 1
        return total
    }

    /// This rank's share `local` of global batch `global`: forward, loss, backward, and the gradients reduced over
    /// the ranks (bucket by bucket as the backward pass completes them). `rank` is the rank whose share it is.
    private func computeGradients(global: Range<Int>, local: Range<Int>, rank: Int) throws {
        let rows = local.count
        let indices = sampler.permutation[local]
        let store = model.store, ae = model.autoencoder, transport = model.transport
        gatherer.gather(data, indices: indices)
        let target = gatherer.input(options.augmentation, seed: options.seed, epoch: epoch, indices: indices)
        var input = target
        if options.maskRate > 0 {
            gatherer.mask(rate: options.maskRate, seed: options.seed, epoch: epoch, indices: indices, from: target)
            input = UnsafePointer(gatherer.noisy)
        }
        ae.forward(store, input: input, rows: rows)
        model.zeroGradients(model.all)
        transport.beginStep()
        let dReconstruction = gatherer.scratch  // (B, D)
        let loss = MSE.lossAndGradient(reconstruction: ae.reconstruction, target: target,
                                       dReconstruction: dReconstruction, rows: rows, dims: data.dimension,
                                       scale: 1 / Float(global.count))
        model.statistics[0] = Float(loss)
        stopAgreement.vote(model, step: step)
        if let poison = options.poison, poison.step == step, poison.rank == rank { dReconstruction[0] = .nan }
        try transport.bucketReady(model.statisticsRange)
        let dEmbedding = try ae.backwardDecoder(store, dReconstruction: dReconstruction, rows: rows) { layer in
            try transport.bucketReady(layer.parameterRange)
        }
        try ae.backwardEncoder(store, input: input, dEmbedding: dEmbedding, rows: rows) { layer in
            try transport.bucketReady(layer.parameterRange)
        }
        try transport.finish()
        lastStepExposed = transport.exposedSeconds
    }

    /// Runs epochs from the current one to `options.epochs`, printing and recording each.
    public func run() throws {
        let batches = sampler.batchesPerEpoch
        let started = Clock.now
        let firstEpoch = epoch
        while epoch < options.epochs {
            try context.checkEpochBudget()
            let epochStart = Clock.now - epochSoFar.seconds
            sampler.shuffle(epoch: epoch)
            var lossSum = epochSoFar.loss, commSeconds = epochSoFar.comm
            let bar = ProgressBar(context: context, total: batches, label: "pretrain epoch \(epoch + 1)")
            for b in batchInEpoch..<batches {
                lossSum += try trainStep(batch: b)
                commSeconds += lastStepExposed
                bar.update(b + 1)
                if let maxSteps = options.maxSteps, step >= maxSteps { break }
                if stopAgreement.agreed && b + 1 < batches {
                    bar.clear()
                    batchInEpoch = b + 1
                    epochSoFar = (lossSum, commSeconds, Clock.now - epochStart)
                    try stopAgreement.stop(context, phase: "pretraining", epoch: epoch, batch: batchInEpoch, batches: batches,
                                           checkpoint: checkpointPath, save: saveCheckpoint)
                }
            }
            bar.clear()
            batchInEpoch = 0
            epochSoFar = (0, 0, 0)
            epoch += 1
            let seconds = Clock.now - epochStart
            let samplesPerSecond = Double(data.count) / seconds
            let loss = lossSum / Double(data.count)
            let done = epoch - firstEpoch
            let eta = (Clock.now - started) / Double(done) * Double(options.epochs - epoch)
            context.say(String(format: "pretrain epoch %3d/%d  loss %.5f  %7.0f samples/s  elapsed %@  ETA %@",
                               epoch, options.epochs, loss, samplesPerSecond,
                               formatDuration(context.elapsed), formatDuration(eta)))
            var record = RunRecord(phase: "pretrain")
            record.epoch = Double(epoch)
            record.step = step
            record.loss = loss
            record.seconds = seconds
            record.samplesPerS = samplesPerSecond
            record.commShare = commSeconds / seconds
            context.record(record)
            let lastOfBudget = context.epochFinished()
            if stopAgreement.agreed {
                try stopAgreement.stop(context, phase: "pretraining", epoch: epoch, batch: 0, batches: batches,
                                       checkpoint: checkpointPath, save: saveCheckpoint)
            }
            if epoch % max(options.checkpointEvery, 1) == 0 || epoch == options.epochs || lastOfBudget {
                try saveCheckpoint()
            }
            if let maxSteps = options.maxSteps, step >= maxSteps { break }
        }
    }

    public var checkpointPath: String { context.path("autoencoder.bin") }

    public func saveCheckpoint() throws {
        guard context.isRoot else { return }
        var metadata = context.checkpointMetadata(epoch: epoch, step: step)
        metadata["kind"] = "autoencoder"
        metadata["seed"] = String(options.seed)
        metadata["batch"] = String(batchInEpoch)
        if batchInEpoch > 0 {
            metadata["epoch_so_far"] = "\(String(epochSoFar.loss.bitPattern, radix: 16)) \(epochSoFar.comm) \(epochSoFar.seconds)"
        }
        let checkpoint = model.checkpoint(metadata: metadata, optimizer: optimizer, includeCentres: false)
        try checkpoint.write(to: checkpointPath)
    }

    /// Continues from the run directory's newest complete autoencoder.bin; false when there is none yet.
    public func resume() throws -> Bool {
        guard let checkpoint = try context.loadCheckpoint("autoencoder.bin") else {
            context.truncateMetrics(to: 0)  // stopped before its first checkpoint: it starts again
            return false
        }
        try model.load(checkpoint, path: checkpointPath, wantCentres: false)
        guard let first = checkpoint.sections["optimizer.first"], let second = checkpoint.sections["optimizer.second"],
              first.count == optimizer.range.count, second.count == optimizer.range.count,
              let epoch = Int(checkpoint.metadata["epoch"] ?? ""), let step = Int(checkpoint.metadata["step"] ?? "") else {
            throw CheckpointError(path: checkpointPath, reason: "holds no optimizer state or epoch: not a checkpoint of a pretraining run")
        }
        optimizer.restore(step: Int(checkpoint.metadata["optimizer_step"] ?? "0") ?? 0, first: first, second: second)
        let batch = Int(checkpoint.metadata["batch"] ?? "0") ?? -1
        guard (0..<sampler.batchesPerEpoch).contains(batch) else {
            throw CheckpointError(path: checkpointPath, reason: "epoch \(epoch), batch \(batch) is not a position of this run "
                                  + "(\(options.epochs) epochs of \(sampler.batchesPerEpoch) batches)")
        }
        if batch > 0 {
            let parts = (checkpoint.metadata["epoch_so_far"] ?? "").split(separator: " ")
            guard parts.count == 3, let bits = UInt64(parts[0], radix: 16), let comm = Double(parts[1]), let seconds = Double(parts[2]) else {
                throw CheckpointError(path: checkpointPath, reason: "a checkpoint inside epoch \(epoch + 1) without the epoch's sums so far")
            }
            epochSoFar = (Double(bitPattern: bits), comm, seconds)
        }
        self.epoch = epoch
        self.step = step
        batchInEpoch = batch
        context.truncateMetrics(to: Int(checkpoint.metadata["metrics_lines"] ?? "") ?? context.metricsLines)
        try model.synchronize(context.communicator)
        return true
    }
}
