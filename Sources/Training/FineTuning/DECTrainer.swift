// The fine-tuning loop of DEC and its relatives (DEC, IDEC, DKM), data-parallel: per epoch, the objective's
// schedule, the shuffle, then per batch a target update every interval (a whole-data pass), the step, and the stop
// tests; per epoch end, the checkpoint. The step, the passes, the starts and the run state are their own types.
// B = batch rows, E = embedding dims, K = clusters, N = samples.
import Clustering
import Collective
import Datasets
import Foundation
import Report
import Tensor

public final class DECTrainer {
    public let context: RunContext
    public let data: DataSet
    public let options: DECOptions
    public let model: Model
    /// The method's clustering term (DEC, IDEC or DKM).
    public let objective: FineTuningObjective
    let passes: WholeDataPass
    let fineTuningStep: FineTuningStep
    var sampler: Sampler
    /// Steps taken, fine-tuning epochs completed, batches of the current epoch done (non-zero after a stop mid-epoch).
    public internal(set) var step = 0
    public internal(set) var completedEpochs = 0
    public internal(set) var batchInEpoch = 0
    /// When the last checkpoint was written (or the phase began), for a cadence in time.
    var lastCheckpoint = Clock.now
    /// The hard assignments at the last target update (for the label-change test).
    var previous: [Int32]?
    /// Sums since the last target update: clustering and reconstruction loss (kept in the state), and the seconds
    /// waited on the reduction (a measurement, not kept: a resumed interval counts its own).
    var intervalSums = [0.0, 0.0]
    var intervalComm = 0.0
    /// Seconds inside training steps since the last record (the rest: the whole-data pass, checkpoints, records).
    var intervalSteps = 0.0
    public internal(set) var history: [RunRecord] = []
    public internal(set) var snapshots: [(epoch: Int, embedding: [Float])] = []
    public internal(set) var lastPass: ClusteringPass?
    /// The start's scores (k-means or N2D on the embedding), kept for the figures and for a resumed run.
    public internal(set) var startScores: ClusteringScores?
    /// The clustering the first target update uses instead of a pass over the model (N2D's mixture posteriors).
    var firstPass: ClusteringPass?
    /// The start's model and clustering (start.bin), for the guard; nil until the start is found or loaded.
    public internal(set) var kept: KeptStart?

    public init(context: RunContext, data: DataSet, options: DECOptions, model: Model) throws {
        try (options.augmentation ?? Recipe.augmentation(for: data)).check(data)
        self.context = context
        self.data = data
        self.options = options
        self.model = model
        objective = makeObjective(options, rows: model.autoencoder.maxRows, embedding: model.embeddingDimension)
        passes = WholeDataPass(data: data, model: model, communicator: context.communicator)
        if options.emulation != nil, context.ranks > 1 { throw RunError("an emulation of several ranks runs on one rank") }
        fineTuningStep = FineTuningStep(model: model, objective: objective, data: data, options: options, rank: context.rank)
        sampler = Sampler(count: data.count, globalBatch: options.batchSize, seed: options.seed, rank: context.rank, ranks: context.ranks)
    }

    /// Seconds the last step waited on the reduction.
    public var lastStepExposed: Double { fineTuningStep.exposedSeconds }
    public var stopAgreement: StopAgreement { fineTuningStep.stopAgreement }

    /// Z, Q, the hard assignments and their scores under the current model.
    public func pass() throws -> ClusteringPass { try passes.run(objective) }

    /// Installs the target distribution of a DEC or IDEC pass for the next interval (the bench and tests).
    public func setTarget(_ pass: ClusteringPass) { objective.passed(pass) }

    /// The start (`options.start`) on the current embedding: sets the centres, keeps the first target's clustering.
    /// Rank 0 writes start.bin: the start's model and clustering, which the guard may keep at the end.
    /// `layout`: N2D's UMAP layout of the embedding, when the choice of K has made it.
    @discardableResult
    public func startClusters(layout: UMAP.Embedding? = nil) throws -> StartingClusters {
        let z = try passes.embed()
        let start = try ClusterStarts.find(z, data: data, embedding: model.embeddingDimension, options: options, layout: layout,
                                           communicator: context.communicator)
        model.setCentres(start.centres)
        startScores = start.scores
        firstPass = start.firstPass
        kept = KeptStart(model: model, embedding: z, start: start)
        try saveStart()
        return start
    }

    /// One global batch of fine-tuning; returns (summed clustering loss, summed reconstruction loss) over the batch.
    @discardableResult
    public func trainStep(batch b: Int) throws -> (Double, Double) {
        let ranks = options.emulation?.ranks ?? context.ranks
        let result = try fineTuningStep(data, batchRows: sampler.batch(b).global.count, epoch: completedEpochs, step: step) { r in
            sampler.permutation[sampler.batch(b, rank: r, of: ranks).local]
        }
        try context.policy.requireFinite(result.cluster + result.reconstruction, quantity: "\(options.method.rawValue) loss", step: step,
                                         gradients: result.finite)
        step += 1
        return (result.cluster, result.reconstruction)
    }

    // MARK: - The loop

    /// Fine-tunes until the label change falls below the tolerance or the epoch limit; returns the final pass.
    /// Starts from `completedEpochs` (0, or where a resumed state left off) and checkpoints as `checkpointEvery` says
    /// and after the last epoch.
    public func run() throws -> ClusteringPass {
        let batches = sampler.batchesPerEpoch
        let interval = options.updateInterval ?? batches
        var converged = false
        let started = Clock.now, firstEpoch = completedEpochs
        var intervalStart = Clock.now
        func report(_ pass: ClusteringPass, changed: Double?) {
            let epoch = Double(step) / Double(batches), done = epoch - Double(firstEpoch)
            record(epoch: epoch, pass: pass, changed: changed, seconds: Clock.now - intervalStart,
                   eta: done > 0 ? (Clock.now - started) / done * (Double(options.epochs) - epoch) : .nan)
            intervalSums = [0, 0]
            intervalComm = 0
            intervalSteps = 0
            intervalStart = Clock.now
        }
        epochs: while completedEpochs < options.epochs {
            try context.checkEpochBudget()
            let epoch = completedEpochs
            objective.beginEpoch(epoch, of: options.epochs)
            sampler.shuffle(epoch: epoch)
            if batchInEpoch == 0 && options.snapshotEpochs.contains(epoch) { snapshots.append((epoch, try passes.embed())) }
            for b in batchInEpoch..<batches {
                if step % interval == 0 {
                    let current = try firstPass.take() ?? pass()
                    lastPass = current
                    let holding = step > 0 && epoch < options.holdTarget  // the start's target stays
                    if !holding { objective.passed(current) }
                    let changed = labelChange(current)
                    previous = current.assignments
                    report(current, changed: changed)
                    if let changed, changed < options.tolerance, objective.stopsOnLabelChange, !holding {
                        context.say(String(format: "stopping: %.4f%% of labels changed (< tol %.4f%%)", changed * 100, options.tolerance * 100))
                        converged = true
                        break epochs
                    }
                }
                let stepStart = Clock.now
                let losses = try trainStep(batch: b)
                intervalSteps += Clock.now - stepStart
                intervalSums[0] += losses.0
                intervalSums[1] += losses.1
                intervalComm += lastStepExposed
                if stopAgreement.agreed && b + 1 < batches {
                    batchInEpoch = b + 1
                    try stop(epoch: epoch, batch: batchInEpoch, of: batches)
                }
            }
            batchInEpoch = 0
            completedEpochs += 1
            if stopAgreement.agreed { try stop(epoch: completedEpochs, batch: 0, of: batches) }
            let lastOfBudget = context.epochFinished()
            if options.checkpointEvery.due(epoch: completedEpochs, secondsSinceLast: Clock.now - lastCheckpoint)
                || completedEpochs == options.epochs || lastOfBudget {
                try saveState()
            }
        }
        let final = try pass()
        if !converged { report(final, changed: labelChange(final)) }
        let finalEpoch = Int((Double(step) / Double(batches)).rounded())
        if snapshots.last?.epoch != finalEpoch { snapshots.append((finalEpoch, final.embedding)) }
        lastPass = final
        return final
    }

    /// The fraction of labels that changed since the last target update; nil at the first.
    func labelChange(_ pass: ClusteringPass) -> Double? {
        previous.map { old in Double(zip(old, pass.assignments).filter { $0 != $1 }.count) / Double(data.count) }
    }

    /// Every rank stops here on an agreed stop signal; rank 0 saves the state first.
    func stop(epoch: Int, batch: Int, of batches: Int) throws -> Never {
        try stopAgreement.stop(context, phase: options.method.rawValue, epoch: epoch, batch: batch, batches: batches,
                               checkpoint: context.path(DECTrainer.stateName), save: saveState)
    }

    func record(epoch: Double, pass: ClusteringPass, changed: Double?, seconds: Double, eta: Double) {
        let samples = Double(data.count)
        let rate = epoch > 0 ? samples / max(seconds, 1e-9) : 0
        var entry = RunRecord(phase: options.method.rawValue)
        entry.epoch = epoch
        entry.step = step
        entry.setScores(accuracy: pass.scores.accuracy, nmi: pass.scores.nmi, ari: pass.scores.ari)
        entry.seconds = seconds
        entry.stepSeconds = intervalSteps
        entry.loss = intervalSums[0] / samples
        entry.samplesPerS = rate
        entry.commShare = intervalComm / max(seconds, 1e-9)
        if objective.reconstructs { entry.reconstructionLoss = intervalSums[1] / samples }
        entry.alpha = objective.sharpness.map(Double.init)
        entry.labelChange = changed
        history.append(entry)
        context.record(entry)
        context.say(String(format: "%@ epoch %6.1f/%d  loss %.5f  %@  changed %@  %7.0f samples/s (steps %3.0f%%)  elapsed %@  ETA %@",
                           options.method.rawValue, epoch, options.epochs, intervalSums[0] / samples, pass.scores.text,
                           changed.map { String(format: "%.4f", $0) } ?? "  -   ", rate, 100 * intervalSteps / max(seconds, 1e-9),
                           formatDuration(context.elapsed), formatDuration(eta)))
    }
}
