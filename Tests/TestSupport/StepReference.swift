// The Double reference of a whole fine-tuning step's loss on one batch (DEC, IDEC, DKM), for central differences of
// DECTrainer.trainStep. It reads weights and centres from `params` (the store's layout) and nothing from the trainer.
// B = batch rows, D = input dims, E = embedding dims, K = clusters.
import NN
import Training

extension Reference {
    /// The two terms as the step reports them, each summed over the rows and unweighted: the clustering term (DEC and
    /// IDEC: KL(P || Q), Xie et al. 2016 eq. 2; DKM: soft k-means of sharpness alpha, Fard et al. 2018) and the
    /// reconstruction MSE (0 for DEC, which has no decoder in its loss). x (B, D): the inputs; p (B, K): the batch rows'
    /// target, row r that of sample indices[r] (DEC and IDEC; ignored by DKM).
    public static func fineTuningTerms(_ method: DeepMethod, model: Model, params: [Double], x: [Double], p: [Double],
                                       rows: Int, alpha: Double) -> (clustering: Double, reconstruction: Double) {
        let ae = model.autoencoder, e = model.embeddingDimension, k = model.clusters
        let z = encode(ae, params, x, rows: rows)                                          // (B, E)
        let centres = Array(params[model.centreRange])                                     // (K, E)
        let reconstruction = method == .dec ? 0 : mse(decode(ae, params, z, rows: rows), x, rows: rows, dims: ae.inputDimension)
        switch method {
        case .dec, .idec:
            return (kl(z: z, centres: centres, p: p, rows: rows, e: e, k: k), reconstruction)
        case .dkm:
            let d = squaredDistances(z, centres, rows: rows, e: e, k: k)                   // (B, K)
            return (softKMeans(d, rows: rows, k: k, alpha: alpha), reconstruction)
        }
    }

    /// The loss whose gradient one step applies: (reconstruction + weight * clustering) / B over the global batch,
    /// weight 1 for DEC and gamma for IDEC and DKM.
    public static func fineTuningLoss(_ method: DeepMethod, model: Model, params: [Double], x: [Double], p: [Double],
                                      rows: Int, globalBatch: Int, gamma: Double, alpha: Double) -> Double {
        let terms = fineTuningTerms(method, model: model, params: params, x: x, p: p, rows: rows, alpha: alpha)
        let weight = method == .dec ? 1 : gamma
        return (terms.reconstruction + weight * terms.clustering) / Double(globalBatch)
    }
}

/// Seeded rows (rows, K) on the probability simplex, none near uniform (a soft assignment Q to make a target from).
public func seededDistributions(rows: Int, clusters k: Int, seed: UInt64) -> [Float] {
    let raw = seededValues(rows * k, seed: seed).map { abs($0) + 0.05 }
    return (0..<rows).flatMap { r -> [Float] in
        let row = raw[(r * k)..<((r + 1) * k)], sum = row.reduce(0, +)
        return row.map { Float($0 / sum) }
    }
}
