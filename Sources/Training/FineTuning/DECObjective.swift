// DEC's clustering term (Xie et al. 2016): KL(P || Q) of the Student-t soft assignment Q against the target P,
// which the whole-data pass recomputes from the clean data's Q (DEC.target) and the steps then fit.
// B = batch rows, E = embedding dims, K = clusters, N = samples.
import Clustering
import Tensor

public final class DECObjective: FineTuningObjective {
    let clusters: Int, embedding: Int
    /// The weight of the term (1 for DEC; gamma when IDEC uses it beside reconstruction).
    let weight: Float
    /// Samples whose target's largest probability is below this take no part in the term (their target is set to
    /// their own q: no loss, no gradient), so self-training fits only what the model is confident of; as the
    /// targets sharpen over the epochs, the set grows. 0: every sample (DEC as published).
    let confidence: Float
    /// P (N, K), from the latest pass.
    private(set) var target: [Float] = []
    // Per-batch scratch, sized once: q, kernel t, the batch's rows of P (B, K).
    private let q: UnsafeMutablePointer<Float>, kernel: UnsafeMutablePointer<Float>, pRows: UnsafeMutablePointer<Float>

    init(clusters: Int, embedding: Int, rows: Int, weight: Float = 1, confidence: Float = 0) {
        self.clusters = clusters
        self.embedding = embedding
        self.weight = weight
        self.confidence = confidence
        q = .allocate(capacity: rows * clusters)
        kernel = .allocate(capacity: rows * clusters)
        pRows = .allocate(capacity: rows * clusters)
    }

    deinit { [q, kernel, pRows].forEach { $0.deallocate() } }

    public var method: DeepMethod { .dec }
    public var reconstructs: Bool { false }
    public var stopsOnLabelChange: Bool { true }
    public func beginEpoch(_ epoch: Int, of epochs: Int) {}

    public func assign(z: UnsafePointer<Float>, rows: Int, centres: UnsafePointer<Float>, q: UnsafeMutablePointer<Float>) {
        let kernel = UnsafeMutablePointer<Float>.allocate(capacity: max(rows * clusters, 1))
        defer { kernel.deallocate() }
        DEC.softAssignment(z: z, rows: rows, dims: embedding, centres: centres, clusters: clusters, q: q, kernel: kernel)
    }

    public func passed(_ pass: ClusteringPass) { target = DEC.target(q: pass.q, clusters: clusters) }

    /// Installs a target directly (the bench and tests, which skip the loop).
    public func setTarget(_ p: [Float]) { target = p }

    public func lossAndGradient(z: UnsafePointer<Float>, rows: Int, indices: ArraySlice<Int32>, centres: UnsafePointer<Float>,
                                scale: Float, dZ: UnsafeMutablePointer<Float>, dCentres: UnsafeMutablePointer<Float>) -> Double {
        let k = clusters
        DEC.softAssignment(z: z, rows: rows, dims: embedding, centres: centres, clusters: k, q: q, kernel: kernel)
        for (r, index) in indices.enumerated() {
            var largest: Float = 0
            for j in 0..<k { pRows[r * k + j] = target[Int(index) * k + j]; largest = max(largest, pRows[r * k + j]) }
            if largest < confidence {
                for j in 0..<k { pRows[r * k + j] = q[r * k + j] }
            }
        }
        return DEC.klLossAndGradient(z: z, rows: rows, dims: embedding, centres: centres, clusters: k, p: pRows, q: q,
                                     kernel: kernel, scale: scale * weight, dZ: dZ, dCentres: dCentres)
    }

    public var sharpness: Float? { get { nil } set {} }
    public var state: [String: [Float]] { ["target": target] }
    public func stateLengths(samples: Int) -> [String: Int] { ["target": samples * clusters] }
    public func restore(_ state: [String: [Float]]) { target = state["target"] ?? [] }
}
