// IDEC's clustering term (Guo et al. 2017): DEC's KL(P || Q) with weight gamma, beside the reconstruction loss that
// keeps the decoder training (the step adds it: `reconstructs`), so the embedding keeps the data's local structure.
import Clustering

public final class IDECObjective: FineTuningObjective {
    private let kl: DECObjective

    init(clusters: Int, embedding: Int, rows: Int, gamma: Float, confidence: Float = 0) {
        kl = DECObjective(clusters: clusters, embedding: embedding, rows: rows, weight: gamma, confidence: confidence)
    }

    public var method: DeepMethod { .idec }
    public var reconstructs: Bool { true }
    public var stopsOnLabelChange: Bool { true }
    public func beginEpoch(_ epoch: Int, of epochs: Int) {}

    public func assign(z: UnsafePointer<Float>, rows: Int, centres: UnsafePointer<Float>, q: UnsafeMutablePointer<Float>) {
        kl.assign(z: z, rows: rows, centres: centres, q: q)
    }

    public func passed(_ pass: ClusteringPass) { kl.passed(pass) }

    public func lossAndGradient(z: UnsafePointer<Float>, rows: Int, indices: ArraySlice<Int32>, centres: UnsafePointer<Float>,
                                scale: Float, dZ: UnsafeMutablePointer<Float>, dCentres: UnsafeMutablePointer<Float>) -> Double {
        kl.lossAndGradient(z: z, rows: rows, indices: indices, centres: centres, scale: scale, dZ: dZ, dCentres: dCentres)
    }

    public var sharpness: Float? { get { nil } set {} }
    public var state: [String: [Float]] { kl.state }
    public func stateLengths(samples: Int) -> [String: Int] { kl.stateLengths(samples: samples) }
    public func restore(_ state: [String: [Float]]) { kl.restore(state) }
}
