// The unsupervised guard: a run ends with two clusterings of its samples, the start's (N2D or k-means on the
// pretrained embedding) and the fine-tuned model's, and keeps the better one by a criterion that needs no labels and
// that neither was trained on: neighbour information in the input space (NeighbourAgreement: the mutual information
// between a sample's cluster and its 15 nearest input neighbours' clusters, for up to 10,000 samples among all, as
// the model reads them: pixels in [0, 1], features standardised). Self-training that amplifies its early mistakes
// moves samples away from their input neighbours' clusters, or merges clusters; both lower it. Fine-tuning that
// fixes the start's mistakes keeps it. Labels, where the data has them, only score both.
import Clustering
import Collective
import Datasets
import Foundation

/// Which result a run keeps (`--keep`).
public enum KeptResult: String, Sendable, CaseIterable {
    /// The better of the start and the fine-tuned result by neighbour information (the default).
    case auto
    /// The fine-tuned model's clustering, whatever it scores (DEC as published).
    case finetuned = "fine-tuned"
    /// The start's clustering.
    case start
}

/// The guard's verdict, with the criterion's values.
public struct GuardDecision: Sendable, Equatable {
    public var keepsStart: Bool
    public var startAgreement: Double
    public var finetunedAgreement: Double
    /// Why, in a sentence the terminal, metrics.jsonl and the report show.
    public var reason: String
}

public struct ResultGuard {
    /// How far below the start's neighbour information (as a fraction of it) the fine-tuned result may score and
    /// still be kept (Recipe.guardMargin). The criterion leans towards an N2D start (a neighbour graph built it):
    /// on MNIST-10k, DEC's result was 2 points of ACC better and 0.05% lower; results worse than their start by
    /// 0.5 to 12 points of ACC were 1% to 14% lower (README: the guard).
    public static let margin = Recipe.guardMargin
    let agreement: NeighbourAgreement

    /// Finds the input-space neighbours (collective: the ranks split the queries).
    public init(data: DataSet, seed: UInt64, communicator: Communicator) throws {
        agreement = try NeighbourAgreement(count: data.count, dims: data.dimension, k: Recipe.guardNeighbours,
                                           maxQueries: Recipe.guardQueries, seed: seed, communicator: communicator,
                                           rows: data.unitRows)
    }

    init(agreement: NeighbourAgreement) { self.agreement = agreement }

    public func score(_ assignments: [Int32], clusters: Int) -> Double { agreement.score(assignments, clusters: clusters) }

    /// The verdict on the start's and the fine-tuned assignments under `keep`.
    public func decide(start: [Int32], finetuned: [Int32], clusters: Int, keep: KeptResult, method: String) -> GuardDecision {
        let s = score(start, clusters: clusters), f = score(finetuned, clusters: clusters)
        let keepsStart: Bool, reason: String
        switch keep {
        case .finetuned:
            keepsStart = false
            reason = "--keep fine-tuned"
        case .start:
            keepsStart = true
            reason = "--keep start"
        case .auto:
            keepsStart = f < s * (1 - ResultGuard.margin)
            reason = keepsStart
                ? String(format: "%@ moved samples away from their input neighbours' clusters (neighbour information %.4f, %.1f%% below the start's %.4f)",
                         method, f, 100 * (s - f) / max(s, 1e-12), s)
                : String(format: "neighbour information %.4f, the start's %.4f (kept unless more than %@ below it)", f, s, Recipe.guardMarginText)
        }
        return GuardDecision(keepsStart: keepsStart, startAgreement: s, finetunedAgreement: f, reason: reason)
    }
}

extension DECTrainer {
    /// The guard at the end of fine-tuning: the verdict on the start (start.bin) and `finetuned`, and the clustering
    /// the run keeps; when that is the start, the model is set back to the start's (so model.bin and predict match).
    public func keepBetter(_ finetuned: ClusteringPass) throws -> (pass: ClusteringPass, decision: GuardDecision?) {
        guard let kept else {
            context.say("note: this run has no \(DECTrainer.startName) (the start of a run written before the guard): keeping the fine-tuned result")
            return (finetuned, nil)
        }
        let judge = try ResultGuard(data: data, seed: options.seed, communicator: context.communicator)
        let decision = judge.decide(start: kept.assignments, finetuned: finetuned.assignments, clusters: options.clusters,
                                    keep: options.keep, method: options.method.rawValue.uppercased())
        guard decision.keepsStart else { return (finetuned, decision) }
        let pass = try restoreStart(kept)
        lastPass = pass
        return (pass, decision)
    }
}
