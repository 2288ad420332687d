// The report's Task 2 end to end: pretrain (or load) the autoencoder, with --clusters auto choose K on the UMAP layout
// of the embedding, the start on the embedding (N2D or k-means), fine-tune with DEC / IDEC / DKM, keep the better of
// start and result, drop the clusters left empty (auto only), save the model, write the outputs and draw the
// figures. Predict beside it.
import Clustering
import Collective
import Datasets
import Foundation
import NN
import Report
import Tensor

public enum DECExperiment {
    public static func run(context: RunContext, data: DataSet, pretrain: PretrainOptions, options given: DECOptions,
                           pretrained: String?) throws -> ClusteringPass {
        try context.writeConfiguration((pretrained == nil ? [("pretrain", pretrain.flags(inDEC: true))]
                                                          : [("pretrained", [("--pretrained", pretrained!)])])
                                       + [(given.method.rawValue, given.flags)])
        var options = given
        let phaseStart = Clock.now
        var choice: ClusterChoice?
        var pretrainedModel: Model?
        if options.chooseClusters != nil {
            let resolved = try ClusterChoice.resolve(context: context, data: data, pretrain: pretrain, pretrained: pretrained,
                                                     options: options)
            (options.clusters, choice, pretrainedModel) = (resolved.clusters, resolved.choice, resolved.encoder)
        }
        let model = try makeModel(pretrain, clusters: options.clusters, options: options, context: context)
        let trainer = try DECTrainer(context: context, data: data, options: options, model: model)
        if context.resuming, try trainer.resume() {
            let position = trainer.batchInEpoch > 0 ? "in epoch \(trainer.completedEpochs + 1), after batch \(trainer.batchInEpoch)"
                : "after epoch \(trainer.completedEpochs)"
            context.say("resuming \(options.method.rawValue) fine-tuning \(position) (step \(trainer.step))")
        } else {
            if let encoder = pretrainedModel {
                try model.load(encoder.checkpoint(metadata: [:], includeCentres: false), path: "the pretrained autoencoder", wantCentres: false)
                try model.synchronize(context.communicator)
                pretrainedModel = nil
            } else {
                try loadOrPretrain(context: context, data: data, pretrain: pretrain, pretrained: pretrained, model: model)
            }
            try context.checkEpochBudget()
            let start = try trainer.startClusters(layout: choice?.embedding)
            context.say(start.summary)
            context.record(start.record)
        }
        let pretrainSeconds = Clock.now - phaseStart
        let fineTuneStart = Clock.now
        let finetuned = try trainer.run()
        let fineTuneSeconds = Clock.now - fineTuneStart
        var (final, decision) = try trainer.keepBetter(finetuned)
        // Clusters left empty are dropped from what the run writes when it chose K; a K the user gave stays.
        let pruning = options.chooseClusters == nil ? nil : ClusterPruning(assignments: final.assignments, clusters: options.clusters)
        if let pruning {
            final = pruning.pass(final, data: data)
            context.say("pruned \(pruning.dropped.count) empty cluster(s) (\(pruning.dropped.map { "c\($0)" }.joined(separator: ", ")) "
                        + "before renumbering): K = \(options.clusters) -> \(pruning.clusters)")
        }
        let k = pruning?.clusters ?? options.clusters
        try trainer.saveModel(start: decision?.keepsStart == true ? trainer.kept : nil, pruning: pruning)
        let baseline = try ClusterStarts.kmeansOnInput(data: data, options: options, communicator: context.communicator)
        context.record(baseline.record)
        try reportResult(context: context, options: options, trainer: trainer, finetuned: finetuned, kept: final, decision: decision,
                         baseline: baseline, seconds: (pretrainSeconds, fineTuneSeconds), clusters: k, pruned: pruning?.dropped)
        let (sizes, small) = DataSet.clusterSizes(final.assignments, clusters: k)
        context.say("cluster sizes: " + sizes.enumerated().map { "c\($0.offset) \($0.element)" }.joined(separator: ", "))
        if !small.isEmpty {
            context.say("warning: " + small.map { "cluster \($0) holds \(sizes[$0]) of \(data.count) samples" }.joined(separator: "; ")
                        + (small.count == 1 ? " (under 1%): it has collapsed" : " (each under 1%): they have collapsed")
                        + "; try fewer --clusters, another --seed, or a lower --lr")
            var warning = RunRecord(phase: "warning")
            warning.collapsedClusters = small
            warning.sizes = sizes
            context.record(warning)
        }
        if context.isRoot {
            try writeAssignments(context.path("assignments.csv"), final.assignments, data: data)
            try context.writeBytes("embedding.npy", NumPyArray.encode(final.embedding, shape: [data.count, model.embeddingDimension]))
            try context.writeBytes("q.npy", NumPyArray.encode(final.q, shape: [data.count, k]))
            try Figures.writeRunFigures(context: context, data: data, trainer: trainer, kmeansScores: trainer.startScores, final: final,
                                        clusters: k)
            let centres = pruning?.rows(model.centreValues, width: model.embeddingDimension) ?? model.centreValues
            if let gallery = Figures.galleryFigure(data: data, embedding: final.embedding, centres: centres,
                                                   assignments: final.assignments, clusters: k) {
                try context.write("clusters.svg", gallery)
            }
        }
        try drawFigure4(context: context, data: data, trainer: trainer)
        if context.isRoot { try RunReport.write(directory: context.directory) }
        return final
    }

    /// The run's model: the autoencoder and `clusters` centres (none while K is being chosen).
    static func makeModel(_ pretrain: PretrainOptions, clusters: Int, options: DECOptions, context: RunContext) throws -> Model {
        let rows = max(largestShare(total: options.batchSize, size: context.ranks), pretrainRows(pretrain, context))
        return try Model(widths: pretrain.widths, clusters: clusters, maxRows: rows, communicator: context.communicator,
                         overlap: pretrain.overlap, precision: pretrain.precision.precision)
    }

    /// The pretrained autoencoder into `model`: loaded from --pretrained, or trained (or its training continued).
    static func loadOrPretrain(context: RunContext, data: DataSet, pretrain: PretrainOptions, pretrained: String?, model: Model) throws {
        if let pretrained {
            if context.resuming { context.metrics.truncate(to: 0) }
            try model.load(try Checkpoint.load(pretrained), path: pretrained, wantCentres: false)
            try model.synchronize(context.communicator)
            context.say("loaded the pretrained autoencoder from \(pretrained)")
        } else {
            try pretrainAutoencoder(context: context, data: data, options: pretrain, model: model)
        }
    }

    /// The run's last lines and its `final` record: k-means on the input, the start and the fine-tuned result with
    /// the guard's criterion, which one was kept and why, and the kept result's scores and times.
    static func reportResult(context: RunContext, options: DECOptions, trainer: DECTrainer, finetuned: ClusteringPass,
                             kept final: ClusteringPass, decision: GuardDecision?,
                             baseline: (scores: ClusteringScores, record: RunRecord, summary: String),
                             seconds: (pretrain: Double, fineTune: Double), clusters: Int, pruned: [Int]?) throws {
        let (pretrainSeconds, fineTuneSeconds) = seconds
        let method = options.method.rawValue.uppercased(), startName = options.start == .n2d ? "N2D" : "k-means"
        context.say(baseline.summary)
        if let decision {
            context.say(String(format: "start (%@ on the embedding): %@  neighbour information %.4f", startName,
                               (trainer.startScores ?? .unknown).text, decision.startAgreement))
            context.say(String(format: "fine-tuned (%@): %@  neighbour information %.4f", method, finetuned.scores.text,
                               decision.finetunedAgreement))
            context.say("kept: the \(decision.keepsStart ? "start" : "fine-tuned result"): \(decision.reason)")
        }
        context.say(String(format: "final %@: %@  (%@; pretraining %@, fine-tuning %@, total %@)",
                           method, final.scores.text, decision?.keepsStart == true ? "the start's clustering" : "fine-tuned",
                           formatDuration(pretrainSeconds), formatDuration(fineTuneSeconds), formatDuration(context.elapsed)))
        var record = RunRecord(phase: "final")
        record.method = options.method.rawValue
        record.setScores(accuracy: final.scores.accuracy, nmi: final.scores.nmi, ari: final.scores.ari)
        record.kept = decision?.keepsStart == true ? "start" : "fine-tuned"
        record.reason = decision?.reason
        record.startAgreement = decision?.startAgreement
        record.finetunedAgreement = decision?.finetunedAgreement
        record.startAcc = trainer.startScores?.accuracy
        record.finetunedAcc = finetuned.scores.accuracy
        record.kmeansInputAcc = baseline.scores.accuracy
        record.pretrainSeconds = pretrainSeconds
        record.finetuneSeconds = fineTuneSeconds
        record.totalSeconds = context.elapsed
        record.ranks = context.ranks
        record.clusters = clusters
        record.prunedClusters = pruned
        record.loadSeconds = context.loadSeconds
        try context.notePeakMemory(&record)
        context.record(record)
    }

    /// Figure 4: t-SNE of the chosen snapshots. The maps are independent, so rank r draws maps r, r + ranks, ...
    /// and then each is broadcast from its owner; rank 0 writes the figure.
    static func drawFigure4(context: RunContext, data: DataSet, trainer: DECTrainer) throws {
        let options = trainer.options
        guard options.tsnePoints >= 10, !trainer.snapshots.isEmpty else { return }
        var chosen = trainer.snapshots
        if !options.snapshotsExplicit && chosen.count > 3 {
            let first = chosen.first!, last = chosen.last!
            let middle = chosen.dropFirst().dropLast().min { abs($0.epoch * 2 - last.epoch) < abs($1.epoch * 2 - last.epoch) }!
            chosen = [first, middle, last]
        }
        let started = Clock.now
        let sample = TSNE.subsample(count: data.count, size: options.tsnePoints, seed: options.seed)
        let e = trainer.model.embeddingDimension
        var tsne = TSNEOptions()
        tsne.seed = options.seed
        tsne.iterations = options.tsneIterations
        tsne.threads = BLAS.threads
        var maps = [[Float]](repeating: [Float](repeating: 0, count: 2 * sample.count), count: chosen.count)
        for k in 0..<chosen.count where k % context.ranks == context.rank {
            let points = sample.flatMap { i in chosen[k].embedding[(i * e)..<((i + 1) * e)] }
            maps[k] = TSNE.embed(points, count: sample.count, dims: e, options: tsne)
        }
        if context.ranks > 1 {
            for k in 0..<chosen.count { try context.communicator.broadcast(&maps[k], root: k % context.ranks) }
        }
        let seconds = Clock.now - started
        context.say(String(format: "t-SNE of %d snapshot(s) x %d points: %.1fs over %d rank(s)", chosen.count, sample.count, seconds,
                           min(context.ranks, chosen.count)))
        var record = RunRecord(phase: "tsne")
        record.seconds = seconds
        record.maps = chosen.count
        record.points = sample.count
        context.record(record)
        guard context.isRoot else { return }
        let accuracy = { (epoch: Int) -> Double? in
            trainer.history.first { $0.wholeEpoch == epoch }?.acc
        }
        // Colour = true label; without labels, the cluster of the model's last pass.
        let colours = data.hasLabels ? data.labels : (trainer.lastPass?.assignments ?? data.labels)
        let figure = Figures.tsneFigure(maps: chosen.enumerated().map { ($0.element.epoch, accuracy($0.element.epoch), maps[$0.offset]) },
                                        labels: sample.map { colours[$0] }, classes: data.hasLabels ? data.classCount : options.clusters,
                                        method: options.method.rawValue.uppercased())
        try context.write("figure4.svg", figure)
    }

    /// Pretrains `model` in place (or continues a stopped pretraining of this run).
    static func pretrainAutoencoder(context: RunContext, data: DataSet, options pretrain: PretrainOptions, model: Model) throws {
        let pretrainer = try Pretrainer(context: context, data: data, options: pretrain, model: model)
        if context.resuming, try pretrainer.resume() {
            context.say(pretrainer.batchInEpoch > 0
                        ? "resuming pretraining in epoch \(pretrainer.epoch + 1) of \(pretrain.epochs), after batch \(pretrainer.batchInEpoch)"
                        : "resuming pretraining after epoch \(pretrainer.epoch) of \(pretrain.epochs)")
        } else {
            try pretrainer.initializeWeights()
        }
        context.say("pretraining \(widthsText(pretrain.widths)) for \(pretrain.epochs) epochs "
                    + "(\(pretrain.optimizer.rawValue) lr \(pretrain.learningRate), mask \(pretrain.maskRate), batch \(pretrain.batchSize))")
        try pretrainer.run()
    }

    static func pretrainRows(_ p: PretrainOptions, _ context: RunContext) -> Int {
        largestShare(total: p.batchSize, size: context.ranks)
    }

    /// index,cluster[,label]: the label as the data wrote it (quoted when it holds a comma or a quote).
    public static func writeAssignments(_ path: String, _ assignments: [Int32], data: DataSet) throws {
        func quoted(_ text: String) -> String {
            text.contains(",") || text.contains("\"") || text.contains("\n") ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        let named = data.sampleNames.count == assignments.count
        var csv = "index," + (named ? "path," : "") + "cluster" + (data.hasLabels ? ",label" : "") + "\n"
        for (i, c) in assignments.enumerated() {
            csv += "\(i)," + (named ? quoted(data.sampleNames[i]) + "," : "") + "\(c)" + (data.hasLabels ? "," + quoted(data.labelName(i)) : "") + "\n"
        }
        try AtomicFile.write(Array(csv.utf8), to: path)
    }
}

/// Assigns samples to clusters with a saved model (the encoder and the centres).
public enum Predictor {
    /// `data` as read from its files, not normalised: the model's own normalisation (if it keeps one) is applied.
    public static func assign(context: RunContext, data raw: DataSet, modelPath: String) throws -> ClusteringPass {
        let checkpoint = try Checkpoint.load(modelPath)
        var data = raw
        if let shift = checkpoint.sections["input.shift"], let scale = checkpoint.sections["input.scale"] {
            guard shift.count == raw.dimension, scale.count == raw.dimension else {
                throw CheckpointError(path: modelPath, reason: "its input normalisation is for \(shift.count) values per sample; the data has \(raw.dimension)")
            }
            data = raw.applying(FeatureTransform(shift: shift, scale: scale))
        } else if raw.isFloat && !raw.isImage {
            context.say("note: \(modelPath) keeps no input normalisation (trained on images): the values of \(raw.name) are used as they are")
        }
        guard checkpoint.clusters >= 2, checkpoint.sections["centres"] != nil else {
            throw CheckpointError(path: modelPath, reason: "holds no cluster centres: pass a model.bin written by `dec`")
        }
        guard checkpoint.widths.first == data.dimension else {
            throw CheckpointError(path: modelPath, reason: "expects \(checkpoint.widths.first ?? 0)-dimensional inputs; the data has \(data.dimension)")
        }
        // The embedding in the arithmetic the run used, so that its own samples get its clusters back.
        var precision = Precision.float32
        if try checkpoint.precision(path: modelPath) == .bf16 {
            if try context.communicator.allreduce(BF16.isAvailable ? 0 : 1, .max) == 0 {
                precision = .bf16
            } else {
                context.say("note: \(modelPath) was trained with bf16 products, which this CPU lacks (oneDNN: \(BF16.instructionSet)): the embedding is computed in float32, so borderline samples may change cluster")
            }
        }
        // No training step: the gradients need no shared memory.
        let model = try Model(widths: checkpoint.widths, clusters: checkpoint.clusters, maxRows: 256,
                              communicator: context.communicator, overlap: false, precision: precision)
        try model.load(checkpoint, path: modelPath, wantCentres: true)
        var options = DECOptions()
        options.clusters = checkpoint.clusters
        options.method = DeepMethod(rawValue: checkpoint.metadata["method"] ?? "dec") ?? .dec
        let objective = makeObjective(options, rows: 1, embedding: model.embeddingDimension)
        if let text = checkpoint.metadata["alpha"] {
            guard let alpha = Float(text), alpha.isFinite, alpha > 0 else {
                throw CheckpointError(path: modelPath, reason: "its alpha \(text.prefix(40)) is not a positive number")
            }
            objective.sharpness = alpha
        }
        let pass = try WholeDataPass(data: data, model: model, communicator: context.communicator).run(objective)
        guard checkpoint.metadata["assign"] == "neighbours" else { return pass }
        // The run kept its N2D start: a sample takes the cluster of its nearest training samples in that embedding.
        let e = model.embeddingDimension, k = checkpoint.clusters
        guard let reference = checkpoint.sections["reference.embedding"], let labels = checkpoint.sections["reference.assignments"],
              !labels.isEmpty, reference.count == labels.count * e, reference.allSatisfy(\.isFinite),
              labels.allSatisfy({ $0 >= 0 && $0 < Float(k) && $0 == $0.rounded() }) else {
            throw CheckpointError(path: modelPath, reason: "assigns by neighbours but holds no valid reference.embedding (N x \(e)) and reference.assignments (N, in 0..<\(k))")
        }
        let vote = NeighbourVote.assign(points: pass.embedding, count: data.count, reference: reference, labels: labels.map { Int32($0) },
                                        dims: e, clusters: k)
        return ClusteringPass(embedding: pass.embedding, q: vote.q, assignments: vote.assignments,
                              scores: data.scores(vote.assignments, clusters: k))
    }
}
