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

public final class Pretrainer {
    public let context: RunContext
    public let data: DataSet
    public let options: PretrainOptions
    public let model: Model
    public let optimizer: Optimizer
    public let gatherer: BatchGatherer
    /// The augmentation in effect (the options', or the recipe's for the data).
    let augmentation: Augmentation
    public var sampler: Sampler
    public private(set) var epoch = 0
    public private(set) var step = 0
    public private(set) var lastStepExposed = 0.0
    /// Batches of `epoch` already trained (non-zero after a resume from a checkpoint written on a stop signal), and
    /// that epoch's sums so far (loss, seconds waited on the reduction, seconds).
    public private(set) var batchInEpoch = 0
    private var epochSoFar = (loss: 0.0, comm: 0.0, seconds: 0.0)
    /// When the last checkpoint was written (or the phase began), for a cadence in time.
    private var lastCheckpoint = Clock.now
    public let stopAgreement = StopAgreement()
    private let shares: ShareGradients?
    private var dumped = false

    public init(context: RunContext, data: DataSet, options: PretrainOptions, model: Model? = nil) throws {
        self.context = context
        self.data = data
        self.options = options
        if options.emulation != nil, context.ranks > 1 { throw RunError("an emulation of several ranks runs on one rank") }
        augmentation = options.augmentation ?? Recipe.augmentation(for: data)
        try augmentation.check(data)
        let maxRows = largestShare(total: options.batchSize, size: options.emulation?.ranks ?? context.ranks)
        let model = try model ?? Model(widths: options.widths, clusters: 1, maxRows: maxRows,
                                       communicator: context.communicator, overlap: options.overlap,
                                       precision: options.precision.precision)
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
        optimizer.learningRate = options.schedule.rate(options.learningRate, step: step,
                                                       total: options.epochs * sampler.batchesPerEpoch)
        if let shares {
            try shares.emulate(into: model.transport.gradients, range: model.all) { r in
                let (global, local) = sampler.batch(b, rank: r, of: shares.emulation.ranks)
                try computeGradients(global: global, local: local, rank: r)
            }
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
        try context.policy.requireFinite(total, quantity: "reconstruction loss", step: step, gradients: finite)
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
        let target = gatherer.input(augmentation, seed: options.seed, epoch: epoch, indices: indices)
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
            var stepSeconds = 0.0  // this invocation's share of the epoch (not kept in checkpoints)
            let bar = ProgressBar(context: context, total: batches, label: "pretrain epoch \(epoch + 1)")
            for b in batchInEpoch..<batches {
                let stepStart = Clock.now
                lossSum += try trainStep(batch: b)
                stepSeconds += Clock.now - stepStart
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
            context.say(String(format: "pretrain epoch %3d/%d  loss %.5f  %7.0f samples/s (steps %3.0f%%)  elapsed %@  ETA %@",
                               epoch, options.epochs, loss, samplesPerSecond, 100 * stepSeconds / seconds,
                               formatDuration(context.elapsed), formatDuration(eta)))
            var record = RunRecord(phase: "pretrain")
            record.epoch = Double(epoch)
            record.step = step
            record.loss = loss
            record.seconds = seconds
            record.stepSeconds = stepSeconds
            record.samplesPerS = samplesPerSecond
            record.commShare = commSeconds / seconds
            context.record(record)
            let lastOfBudget = context.epochFinished()
            if stopAgreement.agreed {
                try stopAgreement.stop(context, phase: "pretraining", epoch: epoch, batch: 0, batches: batches,
                                       checkpoint: checkpointPath, save: saveCheckpoint)
            }
            if options.checkpointEvery.due(epoch: epoch, secondsSinceLast: Clock.now - lastCheckpoint) || epoch == options.epochs
                || lastOfBudget {
                try saveCheckpoint()
            }
            if let maxSteps = options.maxSteps, step >= maxSteps { break }
        }
    }

    public var checkpointPath: String { context.path("autoencoder.bin") }

    public func saveCheckpoint() throws {
        lastCheckpoint = Clock.now
        guard context.isRoot else { return }
        var state = RunState()
        (state.epoch, state.step, state.batch) = (epoch, step, batchInEpoch)
        state.sums = [epochSoFar.loss, epochSoFar.comm, epochSoFar.seconds]
        optimizer.save(into: &state)
        var checkpoint = model.checkpoint(metadata: context.checkpointMetadata(), includeCentres: false)
        checkpoint.metadata["seed"] = String(options.seed)
        state.encode(into: &checkpoint, kind: "autoencoder", method: nil)
        try checkpoint.write(to: checkpointPath)
    }

    /// Continues from the run directory's newest complete autoencoder.bin; false when there is none yet.
    public func resume() throws -> Bool {
        guard let checkpoint = try context.loadCheckpoint("autoencoder.bin") else {
            context.metrics.truncate(to: 0)  // stopped before its first checkpoint: it starts again
            return false
        }
        let expected = RunState.Expectation(kind: "autoencoder", method: nil, optimizerCount: optimizer.range.count,
                                            batchesPerEpoch: sampler.batchesPerEpoch, sumCount: 3, samples: data.count,
                                            metricsLines: try context.agreedMetricsLines())
        let (state, lines) = try context.onEveryRank {
            try model.load(checkpoint, path: checkpointPath, wantCentres: false)
            return try RunState.decode(checkpoint, path: checkpointPath, expected: expected)
        }
        optimizer.restore(state)
        (epoch, step, batchInEpoch) = (state.epoch, state.step, state.batch)
        epochSoFar = (state.sums[0], state.sums[1], state.sums[2])
        context.metrics.truncate(to: lines)
        try model.synchronize(context.communicator)
        return true
    }
}
