// The report's Task 2 end to end: pretrain (or load) the autoencoder, k-means on the embedding, fine-tune with
// DEC / IDEC / DKM, save the model, draw the figures.
import Collective
import Foundation

public enum DECExperiment {
    public static func run(context: RunContext, data: DataSet, pretrain: PretrainOptions, options: DECOptions,
                           pretrained: String?) throws -> ClusteringPass {
        let maxRows = contiguousShare(total: options.batchSize, rank: 0, size: context.ranks).count + 1
        let model = Model(widths: pretrain.widths, clusters: options.clusters, maxRows: max(maxRows, pretrainRows(pretrain, context)))
        let phaseStart = Clock.now
        let trainer = DECTrainer(context: context, data: data, options: options, model: model)
        if context.resuming, try trainer.resume() {
            context.say("resuming \(options.method.rawValue) fine-tuning after epoch \(trainer.completedEpochs) (step \(trainer.step))")
        } else {
            if let pretrained {
                if context.resuming { context.truncateMetrics(to: 0) }
                try model.load(try Checkpoint.load(pretrained), path: pretrained, wantCentres: false)
                try model.synchronize(context.communicator)
                context.say("loaded the pretrained autoencoder from \(pretrained)")
            } else {
                let pretrainer = Pretrainer(context: context, data: data, options: pretrain, model: model)
                if context.resuming, try pretrainer.resume() {
                    context.say("resuming pretraining after epoch \(pretrainer.epoch) of \(pretrain.epochs)")
                } else {
                    try pretrainer.initializeWeights()
                }
                context.say("pretraining \(pretrain.widths.map(String.init).joined(separator: "-")) for \(pretrain.epochs) epochs "
                            + "(\(pretrain.optimizer.rawValue) lr \(pretrain.learningRate), mask \(pretrain.maskRate), batch \(pretrain.batchSize))")
                try pretrainer.run()
            }
            try context.checkEpochBudget()
            let kmeansStart = Clock.now
            let (kmeans, kScores) = try trainer.initializeCentres()
            trainer.kmeansScores = kScores
            context.say(String(format: "k-means on the embedding (%d restarts over %d rank(s), inertia %.4g, %.1fs): ACC %.4f  NMI %.4f  ARI %.4f",
                               options.restarts, context.ranks, kmeans.inertia, Clock.now - kmeansStart, kScores.accuracy, kScores.nmi, kScores.ari))
            context.record(["phase": "kmeans-embedding", "acc": kScores.accuracy, "nmi": kScores.nmi, "ari": kScores.ari, "inertia": kmeans.inertia])
        }
        let pretrainSeconds = Clock.now - phaseStart
        let fineTuneStart = Clock.now
        let final = try trainer.run()
        let fineTuneSeconds = Clock.now - fineTuneStart
        try trainer.saveModel()
        context.say(String(format: "final %@: ACC %.4f  NMI %.4f  ARI %.4f  (pretraining %@, fine-tuning %@, total %@)",
                           options.method.rawValue.uppercased(), final.scores.accuracy, final.scores.nmi, final.scores.ari,
                           formatDuration(pretrainSeconds), formatDuration(fineTuneSeconds), formatDuration(context.elapsed)))
        context.record(["phase": "final", "method": options.method.rawValue, "acc": final.scores.accuracy, "nmi": final.scores.nmi,
                        "ari": final.scores.ari, "pretrain_seconds": pretrainSeconds, "finetune_seconds": fineTuneSeconds,
                        "total_seconds": context.elapsed, "ranks": context.ranks])
        if context.isRoot {
            try writeAssignments(context.path("assignments.csv"), final.assignments, labels: data.labels)
            try Figures.writeRunFigures(context: context, data: data, trainer: trainer, kmeansScores: trainer.kmeansScores, final: final)
        }
        return final
    }

    static func pretrainRows(_ p: PretrainOptions, _ context: RunContext) -> Int {
        contiguousShare(total: p.batchSize, rank: 0, size: context.ranks).count + 1
    }

    public static func writeAssignments(_ path: String, _ assignments: [Int32], labels: [Int32]?) throws {
        var csv = labels == nil ? "index,cluster\n" : "index,cluster,label\n"
        for (i, c) in assignments.enumerated() {
            csv += labels.map { "\(i),\(c),\($0[i])\n" } ?? "\(i),\(c)\n"
        }
        try Checkpoint.atomicWrite(Array(csv.utf8), to: path)
    }
}

/// Assigns samples to clusters with a saved model (the encoder and the centres).
public enum Predictor {
    public static func assign(context: RunContext, data: DataSet, modelPath: String) throws -> (assignments: [Int32], scores: ClusteringScores?) {
        let checkpoint = try Checkpoint.load(modelPath)
        guard checkpoint.clusters >= 2, checkpoint.sections["centres"] != nil else {
            throw CheckpointError(path: modelPath, reason: "holds no cluster centres: pass a model.bin written by `dec`")
        }
        guard checkpoint.widths.first == data.dimension else {
            throw CheckpointError(path: modelPath, reason: "expects \(checkpoint.widths.first ?? 0)-dimensional inputs; the data has \(data.dimension)")
        }
        let model = Model(widths: checkpoint.widths, clusters: checkpoint.clusters, maxRows: 256)
        try model.load(checkpoint, path: modelPath, wantCentres: true)
        var options = DECOptions()
        options.clusters = checkpoint.clusters
        options.method = DeepMethod(rawValue: checkpoint.metadata["method"] ?? "dec") ?? .dec
        let trainer = DECTrainer(context: context, data: data, options: options, model: model)
        if let alpha = Float(checkpoint.metadata["alpha"] ?? "") { trainer.alphaOverride(alpha) }
        let result = try trainer.pass()
        return (result.assignments, result.scores)
    }
}

extension DECTrainer {
    func alphaOverride(_ value: Float) { alpha = value }
}
