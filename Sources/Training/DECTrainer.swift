// DEC fine-tuning and its relatives, data-parallel: DEC (KL(P||Q) on the encoder and centres), IDEC
// (reconstruction + gamma KL, keeping the decoder) and deep k-means (reconstruction + gamma soft k-means on the
// embedding, alpha annealed). Whole-data passes split the N samples over the ranks and allgatherv the result.
// B = batch rows, D = input dims, E = embedding dims, K = clusters, N = samples.
import Clustering
import Collective
import CollectiveMPI
import Datasets
import Foundation
import NN
import Report
import Tensor

public enum DeepMethod: String, Sendable, CaseIterable { case dec, idec, dkm }

/// How the clusters that fine-tuning starts from are found on the pretrained embedding.
public enum ClusterStart: String, Sendable, CaseIterable {
    /// k-means++ and Lloyd on the embedding (DEC as published).
    case kmeans
    /// N2D (McConville et al. 2020): UMAP of the embedding, then a full-covariance Gaussian mixture on the layout.
    case n2d
}

public struct DECOptions: Sendable {
    public var method: DeepMethod = .dec
    public var clusters = 10
    public var epochs = 200
    public var batchSize = 256
    public var optimizer: OptimizerKind = .sgd
    public var learningRate: Float = 0.01
    public var seed: UInt64 = 0
    /// Steps between target updates; nil = once per epoch.
    public var updateInterval: Int? = nil
    public var tolerance: Double = 0.001
    public var restarts = 20
    /// How the starting clusters are found; with n2d, `umap` configures the layout.
    public var start = ClusterStart.n2d
    public var umap = UMAPOptions()
    /// IDEC and DKM: weight of the clustering term.
    public var gamma: Float = 0.1
    /// DKM: alpha grows geometrically from alphaStart to alphaEnd over the epochs.
    public var alphaStart: Float = 0.1
    public var alphaEnd: Float = 100
    /// Epochs whose embedding is kept for Figure 4. Default: 0 and the powers of two, of which the figure shows
    /// the start, the middle and the end; explicit (`--snapshots`): all of them, and the end.
    public var snapshotEpochs: Set<Int> = Set([0] + (0..<16).map { 1 << $0 })
    public var snapshotsExplicit = false
    /// t-SNE of Figure 4: points in the seeded subsample (0 = no Figure 4) and iterations.
    public var tsnePoints = 2000
    public var tsneIterations = 1000
    public var checkpointEvery = 1
    /// Fine-tuning on augmented batches (the target distribution P stays that of the clean data).
    public var augmentation = Augmentation.none
    public init() {}
}

/// The state of the clustering after one whole-data pass.
public struct ClusteringPass: Sendable {
    public var embedding: [Float]      // (N, E)
    public var q: [Float]              // (N, K)
    public var assignments: [Int32]    // (N)
    public var scores: ClusteringScores
}

public final class DECTrainer {
    public let context: RunContext
    public let data: DataSet
    public let options: DECOptions
    public let model: Model
    let optimizer: Optimizer
    let gatherer: BatchGatherer
    var sampler: Sampler
    /// The method's clustering term (DEC, IDEC or DKM).
    public let objective: FineTuningObjective
    /// Per-batch scratch, sized once: dZ (B, E).
    let dZ: UnsafeMutablePointer<Float>
    public private(set) var step = 0
    public private(set) var history: [RunRecord] = []
    public private(set) var snapshots: [(epoch: Int, embedding: [Float])] = []
    public private(set) var lastPass: ClusteringPass?
    public var lastStepExposed = 0.0
    /// Fine-tuning epochs completed; the loop continues from here after a resume.
    public private(set) var completedEpochs = 0
    /// Batches of the current epoch already trained (non-zero after a resume from a checkpoint written on a stop signal).
    public private(set) var batchInEpoch = 0
    public let stopAgreement = StopAgreement()
    /// The hard assignments at the last target update (for the label-change test).
    var previous: [Int32]?
    /// Loss sums since the last target update.
    var intervalLoss = (0.0, 0.0)
    /// Seconds waited on the allreduce since the last target update.
    var intervalComm = 0.0
    /// k-means (or N2D) on the embedding before fine-tuning (kept for the figures and for a resumed run).
    public var kmeansScores: ClusteringScores?
    /// The clustering the first target update uses instead of a pass over the model (N2D's mixture posteriors).
    var startingPass: ClusteringPass?

    public init(context: RunContext, data: DataSet, options: DECOptions, model: Model) throws {
        try options.augmentation.check(data)
        self.context = context
        self.data = data
        self.options = options
        self.model = model
        let rows = model.autoencoder.maxRows
        objective = makeObjective(options, rows: rows, embedding: model.embeddingDimension)
        let lower = objective.reconstructs ? 0 : model.autoencoder.encoderRange.lowerBound
        optimizer = Optimizer(kind: options.optimizer, learningRate: options.learningRate, range: lower..<model.centreRange.upperBound)
        gatherer = BatchGatherer(dims: data.dimension, maxRows: rows, transform: FeatureTransform(data: data, normalization: .unit))
        sampler = Sampler(count: data.count, globalBatch: options.batchSize, seed: options.seed, rank: context.rank, ranks: context.ranks)
        dZ = .allocate(capacity: rows * model.embeddingDimension)
    }

    deinit { dZ.deallocate() }

    // MARK: - Whole-data passes

    /// Embeds all N samples: each rank its contiguous slice in chunks of the batch buffer, then allgatherv.
    public func embedAll() throws -> [Float] {
        let e = model.embeddingDimension
        let slice = contiguousShare(total: data.count, rank: context.rank, size: context.ranks)
        var local = [Float](repeating: 0, count: slice.count * e)
        var start = slice.lowerBound
        while start < slice.upperBound {
            let end = min(start + gatherer.maxRows, slice.upperBound)
            gatherer.gather(data, indices: ArraySlice(Int32(start)..<Int32(end)))
            let z = model.autoencoder.encode(model.store, input: gatherer.clean, rows: end - start)
            for i in 0..<((end - start) * e) { local[(start - slice.lowerBound) * e + i] = z[i] }
            start = end
        }
        return try gather(local, perSample: e)
    }

    func gather(_ local: [Float], perSample width: Int) throws -> [Float] {
        let counts = shareCounts(total: data.count, size: context.ranks).map { $0 * width }
        var all = [Float](repeating: 0, count: data.count * width)
        try local.withUnsafeBufferPointer { send in
            try all.withUnsafeMutableBufferPointer { try context.communicator.allgatherv(send, into: $0, counts: counts) }
        }
        return all
    }

    /// Z, Q (each rank its slice of Q, then allgatherv), hard assignments and scores.
    public func pass() throws -> ClusteringPass {
        let k = options.clusters, e = model.embeddingDimension
        let z = try embedAll()
        let slice = contiguousShare(total: data.count, rank: context.rank, size: context.ranks)
        var localQ = [Float](repeating: 0, count: slice.count * k)
        if slice.count > 0 {
            z.withUnsafeBufferPointer { zp in
                localQ.withUnsafeMutableBufferPointer { qp in
                    objective.assign(z: zp.baseAddress! + slice.lowerBound * e, rows: slice.count,
                                     centres: model.store.parameters + model.centres, q: qp.baseAddress!)
                }
            }
        }
        let q = try gather(localQ, perSample: k)
        var assignments = [Int32](repeating: 0, count: data.count)
        for i in 0..<data.count {
            var best = 0
            for j in 1..<k where q[i * k + j] > q[i * k + best] { best = j }
            assignments[i] = Int32(best)
        }
        let scores = data.scores(assignments, clusters: k)
        return ClusteringPass(embedding: z, q: q, assignments: assignments, scores: scores)
    }

    /// k-means++ and Lloyd on the embedding, restarts spread over the ranks; the best centres everywhere.
    public func initializeCentres() throws -> (KMeansResult, ClusteringScores) {
        let z = try embedAll()
        let result = try z.withUnsafeBufferPointer { zp in
            try KMeans.fit(points: zp.baseAddress!, count: data.count, dims: model.embeddingDimension, clusters: options.clusters,
                           restarts: options.restarts, seed: options.seed, communicator: context.communicator, spreadRestarts: true)
        }
        model.setCentres(result.centres)
        let scores = data.scores(result.assignments, clusters: options.clusters)
        return (result, scores)
    }

    /// N2D: UMAP of the embedding and a Gaussian mixture on the layout. The centres become the mixture's clusters'
    /// means in the embedding (posterior-weighted), and the first target distribution comes from its posteriors.
    public func initializeN2D() throws -> (GaussianMixtureResult, ClusteringScores) {
        let z = try embedAll()
        let n = data.count, e = model.embeddingDimension, k = options.clusters
        var umap = options.umap
        umap.seed = options.seed
        let layout = try UMAP.embed(points: z, count: n, dims: e, options: umap, communicator: context.communicator)
        let start = try layout.withUnsafeBufferPointer { p in
            try KMeans.fit(points: p.baseAddress!, count: n, dims: umap.components, clusters: k, restarts: options.restarts,
                           seed: options.seed, communicator: context.communicator, spreadRestarts: true)
        }
        let mixture = GaussianMixture.fit(points: layout, count: n, dims: umap.components, components: k, initial: start.assignments)
        var centres = [Double](repeating: 0, count: k * e), totals = [Double](repeating: 0, count: k)
        for i in 0..<n {
            for c in 0..<k {
                let w = Double(mixture.responsibilities[i * k + c])
                totals[c] += w
                for d in 0..<e { centres[c * e + d] += w * Double(z[i * e + d]) }
            }
        }
        model.setCentres((0..<(k * e)).map { Float(centres[$0] / max(totals[$0 / e], 1e-12)) })
        let scores = data.scores(mixture.assignments, clusters: k)
        startingPass = ClusteringPass(embedding: z, q: mixture.responsibilities, assignments: mixture.assignments, scores: scores)
        return (mixture, scores)
    }

    // MARK: - The step

    /// One global batch of fine-tuning; returns (summed clustering loss, summed reconstruction loss) over the batch.
    @discardableResult
    public func trainStep(batch b: Int) throws -> (Double, Double) {
        let e = model.embeddingDimension
        let (global, local) = sampler.batch(b)
        let rows = local.count
        let indices = sampler.permutation[local]
        let store = model.store, ae = model.autoencoder, transport = model.transport
        let scale = 1 / Float(global.count)
        gatherer.gather(data, indices: indices)
        let input = gatherer.input(options.augmentation, seed: options.seed, epoch: completedEpochs, indices: indices)
        let z = ae.encode(store, input: input, rows: rows)
        let reduceRange = objective.reconstructs ? model.all : model.encoderSuffix
        model.zeroGradients(reduceRange)
        transport.beginStep()
        dZ.update(repeating: 0, count: rows * e)
        let clusterLoss = objective.lossAndGradient(z: z, rows: rows, indices: indices, centres: store.parameters + model.centres,
                                                    scale: scale, dZ: dZ, dCentres: store.gradients + model.centres)
        model.statistics[0] = Float(clusterLoss)
        stopAgreement.vote(model, step: step)
        if objective.reconstructs {
            ae.decode(store, rows: rows)
            model.statistics[1] = Float(MSE.lossAndGradient(reconstruction: ae.reconstruction, target: input,
                                                            dReconstruction: gatherer.scratch, rows: rows, dims: data.dimension,
                                                            scale: scale))
        }
        // The centres and the statistics are complete: their bucket first, then each layer as backward completes it.
        try transport.bucketReady(model.centreRange.lowerBound..<model.statisticsRange.upperBound)
        var dEmbedding = dZ
        if objective.reconstructs {
            dEmbedding = try ae.backwardDecoder(store, dReconstruction: gatherer.scratch, rows: rows) { layer in
                try transport.bucketReady(layer.parameterRange)
            }
            for i in 0..<(rows * e) { dEmbedding[i] += dZ[i] }
        }
        try ae.backwardEncoder(store, input: input, dEmbedding: dEmbedding, rows: rows) { layer in
            try transport.bucketReady(layer.parameterRange)
        }
        try transport.finish()
        lastStepExposed = transport.exposedSeconds
        stopAgreement.tally(model, step: step)
        let totals = (Double(model.statistics[0]), Double(model.statistics[1]))
        let finite = optimizer.update(store)
        try context.requireFinite(totals.0 + totals.1, quantity: "\(options.method.rawValue) loss", step: step, gradients: finite)
        step += 1
        return totals
    }

    /// Installs the target distribution of a DEC or IDEC pass for the next interval (the bench and tests).
    public func setTarget(_ pass: ClusteringPass) { objective.passed(pass) }

    // MARK: - The loop

    /// Fine-tunes until the label change falls below the tolerance or the epoch limit; returns the final pass.
    /// Starts from `completedEpochs` (0, or where a resumed checkpoint left off) and checkpoints every
    /// `checkpointEvery` epochs.
    public func run() throws -> ClusteringPass {
        let batches = sampler.batchesPerEpoch
        let interval = options.updateInterval ?? batches
        var stop = false
        let started = Clock.now, firstEpoch = completedEpochs
        var intervalStart = Clock.now
        func report(_ pass: ClusteringPass, changed: Double?) {
            let epoch = Double(step) / Double(batches)
            record(epoch: epoch, pass: pass, changed: changed, loss: intervalLoss, seconds: Clock.now - intervalStart,
                   eta: epoch > Double(firstEpoch) ? (Clock.now - started) / (epoch - Double(firstEpoch)) * (Double(options.epochs) - epoch) : .nan)
            intervalLoss = (0, 0)
            intervalComm = 0
            intervalStart = Clock.now
        }
        while completedEpochs < options.epochs {
            try context.checkEpochBudget()
            let epoch = completedEpochs
            objective.beginEpoch(epoch, of: options.epochs)
            sampler.shuffle(epoch: epoch)
            if batchInEpoch == 0 && options.snapshotEpochs.contains(epoch) { snapshots.append((epoch, try embedAll())) }
            for b in batchInEpoch..<batches {
                if step % interval == 0 {
                    let current = try startingPass.take() ?? pass()
                    lastPass = current
                    objective.passed(current)
                    let changed = previous.map { old in Double(zip(old, current.assignments).filter { $0 != $1 }.count) / Double(data.count) }
                    previous = current.assignments
                    report(current, changed: changed)
                    if let changed, changed < options.tolerance, objective.stopsOnLabelChange {
                        context.say(String(format: "stopping: %.4f%% of labels changed (< tol %.4f%%)", changed * 100, options.tolerance * 100))
                        stop = true
                        break
                    }
                }
                let losses = try trainStep(batch: b)
                intervalLoss.0 += losses.0
                intervalLoss.1 += losses.1
                intervalComm += lastStepExposed
                if stopAgreement.agreed && b + 1 < batches {
                    batchInEpoch = b + 1
                    try stopAgreement.stop(context, phase: options.method.rawValue, epoch: epoch, batch: batchInEpoch,
                                           batches: batches, checkpoint: context.path(DECTrainer.stateName), save: saveState)
                }
            }
            batchInEpoch = 0
            if stop { break }
            completedEpochs += 1
            if stopAgreement.agreed {
                try stopAgreement.stop(context, phase: options.method.rawValue, epoch: completedEpochs, batch: 0,
                                       batches: batches, checkpoint: context.path(DECTrainer.stateName), save: saveState)
            }
            let lastOfBudget = context.epochFinished()
            if completedEpochs % max(options.checkpointEvery, 1) == 0 || lastOfBudget { try saveState() }
        }
        let final = try pass()
        if !stop {
            report(final, changed: previous.map { old in Double(zip(old, final.assignments).filter { $0 != $1 }.count) / Double(data.count) })
        }
        let finalEpoch = Int((Double(step) / Double(batches)).rounded())
        if snapshots.last?.epoch != finalEpoch { snapshots.append((finalEpoch, final.embedding)) }
        lastPass = final
        return final
    }

    func record(epoch: Double, pass: ClusteringPass, changed: Double?, loss: (Double, Double), seconds: Double, eta: Double) {
        let samples = Double(data.count)
        var entry = RunRecord(phase: options.method.rawValue)
        entry.epoch = epoch
        entry.step = step
        entry.setScores(accuracy: pass.scores.accuracy, nmi: pass.scores.nmi, ari: pass.scores.ari)
        entry.seconds = seconds
        entry.loss = loss.0 / samples
        entry.samplesPerS = epoch > 0 ? samples / max(seconds, 1e-9) : 0
        entry.commShare = intervalComm / max(seconds, 1e-9)
        if objective.reconstructs { entry.reconstructionLoss = loss.1 / samples }
        entry.alpha = objective.sharpness.map(Double.init)
        entry.labelChange = changed
        history.append(entry)
        context.record(entry)
        context.say(String(format: "%@ epoch %6.1f/%d  loss %.5f  %@  changed %@  %7.0f samples/s  elapsed %@  ETA %@",
                           options.method.rawValue, epoch, options.epochs, loss.0 / samples, pass.scores.text, changed.map { String(format: "%.4f", $0) } ?? "  -   ",
                           epoch > 0 ? samples / max(seconds, 1e-9) : 0.0, formatDuration(context.elapsed), formatDuration(eta)))
    }

    /// DKM's alpha, or for the other methods alphaStart (model.bin has always held it; predict reads it back).
    var alpha: Float { objective.sharpness ?? options.alphaStart }

    // MARK: - Saving

    public func saveModel(_ name: String = "model.bin") throws {
        guard context.isRoot else { return }
        let checkpoint = model.checkpoint(metadata: ["kind": "model", "method": options.method.rawValue, "step": String(step),
                                                     "seed": String(options.seed), "alpha": String(alpha)],
                                          includeCentres: true)
        var withInput = checkpoint
        if let transform = data.inputTransform {  // how the data was normalised: predict does the same to new data
            withInput.sections["input.shift"] = transform.shift
            withInput.sections["input.scale"] = transform.scale
        }
        try withInput.write(to: context.path(name))
    }

    public static let stateName = "dec-state.bin"

    /// Everything the loop needs to continue exactly: weights, centres, optimizer, target P, the last assignments,
    /// the snapshots, the loss sums since the last update; the RNG streams are functions of (seed, epoch).
    public func saveState() throws {
        guard context.isRoot else { return }
        var metadata = context.checkpointMetadata(epoch: completedEpochs, step: step)
        metadata["kind"] = "dec-state"
        metadata["method"] = options.method.rawValue
        metadata["alpha"] = String(alpha)
        metadata["batch"] = String(batchInEpoch)
        metadata["interval_loss"] = "\(intervalLoss.0) \(intervalLoss.1)"
        if let kmeansScores { metadata["kmeans"] = "\(kmeansScores.accuracy) \(kmeansScores.nmi) \(kmeansScores.ari)" }
        var checkpoint = model.checkpoint(metadata: metadata, optimizer: optimizer, includeCentres: true)
        for (name, values) in objective.state { checkpoint.sections[name] = values }
        if let previous { checkpoint.sections["previous"] = previous.map(Float.init) }
        for (epoch, embedding) in snapshots { checkpoint.sections["snapshot.\(epoch)"] = embedding }
        try checkpoint.write(to: context.path(DECTrainer.stateName))
    }

    /// Continues from the run directory's newest complete dec-state.bin; false when there is none.
    public func resume() throws -> Bool {
        guard let checkpoint = try context.loadCheckpoint(DECTrainer.stateName) else { return false }
        let path = context.path(DECTrainer.stateName)
        try model.load(checkpoint, path: path, wantCentres: true)
        let metadata = checkpoint.metadata
        guard metadata["method"] == options.method.rawValue, let first = checkpoint.sections["optimizer.first"],
              let second = checkpoint.sections["optimizer.second"], first.count == optimizer.range.count,
              let epoch = Int(metadata["epoch"] ?? ""), let step = Int(metadata["step"] ?? "") else {
            throw CheckpointError(path: path, reason: "not the state of a \(options.method.rawValue) run of this configuration")
        }
        optimizer.restore(step: Int(metadata["optimizer_step"] ?? "0") ?? 0, first: first, second: second)
        do { try objective.restore(checkpoint.sections) } catch {
            throw CheckpointError(path: path, reason: "\(error)")
        }
        previous = checkpoint.sections["previous"].map { $0.map { Int32($0) } }
        snapshots = checkpoint.sections.keys.compactMap { name -> (Int, [Float])? in
            guard name.hasPrefix("snapshot."), let e = Int(name.dropFirst("snapshot.".count)) else { return nil }
            return (e, checkpoint.sections[name]!)
        }.sorted { $0.0 < $1.0 }
        let batch = Int(metadata["batch"] ?? "0") ?? -1
        guard (0..<sampler.batchesPerEpoch).contains(batch) else {
            throw CheckpointError(path: path, reason: "batch \(batch) is not a position in an epoch of \(sampler.batchesPerEpoch) batches")
        }
        completedEpochs = epoch
        batchInEpoch = batch
        self.step = step
        if let alpha = Float(metadata["alpha"] ?? "") { objective.sharpness = alpha }
        let losses = (metadata["interval_loss"] ?? "").split(separator: " ").compactMap { Double($0) }
        if losses.count == 2 { intervalLoss = (losses[0], losses[1]) }
        let scores = (metadata["kmeans"] ?? "").split(separator: " ").compactMap { Double($0) }
        if scores.count == 3 { kmeansScores = ClusteringScores(accuracy: scores[0], nmi: scores[1], ari: scores[2]) }
        context.truncateMetrics(to: Int(metadata["metrics_lines"] ?? "") ?? context.metricsLines)
        history = context.readMetrics().filter { $0.phase == options.method.rawValue }
        try model.synchronize(context.communicator)
        return true
    }
}
