// Deep k-means' clustering term (Fard et al. 2018, the report's reference [1]): the soft k-means loss (softmax
// weights of sharpness alpha, SoftKMeans) on the embedding, with weight gamma beside reconstruction; alpha grows
// geometrically from alphaStart to alphaEnd over the epochs. No target: the term needs nothing from the pass.
// B = batch rows, E = embedding dims, K = clusters.
import Clustering
import Datasets
import Foundation
import NN
import Report
import Tensor

public final class DKMObjective: FineTuningObjective {
    let clusters: Int, embedding: Int
    let gamma: Float, alphaStart: Float, alphaEnd: Float
    public private(set) var alpha: Float
    // Per-batch scratch, sized once: distances, weights, dLoss/dDistances (B, K).
    private let distances: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>, dDistances: UnsafeMutablePointer<Float>

    init(_ options: DECOptions, embedding: Int, rows: Int) {
        clusters = options.clusters
        self.embedding = embedding
        gamma = options.gamma
        alphaStart = options.alphaStart
        alphaEnd = options.alphaEnd
        alpha = options.alphaStart
        distances = .allocate(capacity: rows * clusters)
        weights = .allocate(capacity: rows * clusters)
        dDistances = .allocate(capacity: rows * clusters)
    }

    deinit { [distances, weights, dDistances].forEach { $0.deallocate() } }

    public var method: DeepMethod { .dkm }
    public var reconstructs: Bool { true }
    public var stopsOnLabelChange: Bool { false }

    public func beginEpoch(_ epoch: Int, of epochs: Int) {
        let t = epochs > 1 ? Float(epoch) / Float(epochs - 1) : 1
        alpha = alphaStart * pow(alphaEnd / alphaStart, t)
    }

    /// The softmax of -alpha d over the centres; its hard labels are the nearest centres whatever alpha is.
    public func assign(z: UnsafePointer<Float>, rows: Int, centres: UnsafePointer<Float>, q: UnsafeMutablePointer<Float>) {
        var d = [Float](repeating: 0, count: rows * clusters)
        KMeans.squaredDistances(points: z, rows: rows, dims: embedding, centres: centres, clusters: clusters, into: &d)
        d.withUnsafeBufferPointer { SoftKMeans.softmaxWeights(distances: $0.baseAddress!, rows: rows, clusters: clusters, alpha: alpha, into: q) }
    }

    public func passed(_ pass: ClusteringPass) {}

    public func lossAndGradient(z: UnsafePointer<Float>, rows: Int, indices: ArraySlice<Int32>, centres: UnsafePointer<Float>,
                                scale: Float, dZ: UnsafeMutablePointer<Float>, dCentres: UnsafeMutablePointer<Float>) -> Double {
        DEC.kMeansLossAndGradient(z: z, rows: rows, dims: embedding, centres: centres, clusters: clusters, alpha: alpha,
                                  scale: scale * gamma, distances: distances, weights: weights, dDistances: dDistances,
                                  dZ: dZ, dCentres: dCentres)
    }


    public var sharpness: Float? {
        get { alpha }
        set { if let newValue { alpha = newValue } }
    }

    public var state: [String: [Float]] { ["target": []] }
    public func restore(_ state: [String: [Float]]) throws {}
}
