// FineTuningObjective: the clustering term of a fine-tuning method (DEC, IDEC, DKM), one file each. The step
// (FineTuningStep) asks it for the term's loss and its gradients on a batch's embedding; the whole-data pass
// (WholeDataPass) asks it for soft assignments, and the loop hands it the result (DEC's target P comes from there).
// B = batch rows, E = embedding dims, K = clusters, N = samples.
import Clustering
import Tensor

public protocol FineTuningObjective: AnyObject {
    var method: DeepMethod { get }
    /// IDEC and DKM also train the decoder on reconstruction; the clustering term then has weight gamma.
    var reconstructs: Bool { get }
    /// Training stops once fewer labels than the tolerance change between two passes (not DKM: alpha anneals).
    var stopsOnLabelChange: Bool { get }
    /// Called at the start of each epoch (DKM anneals alpha).
    func beginEpoch(_ epoch: Int, of epochs: Int)
    /// Soft assignments q (rows, K) of embeddings z (rows, E), for a whole-data pass; hard labels are its argmax.
    func assign(z: UnsafePointer<Float>, rows: Int, centres: UnsafePointer<Float>, q: UnsafeMutablePointer<Float>)
    /// The latest whole-data pass (on clean data): what the next steps fit.
    func passed(_ pass: ClusteringPass)
    /// The term on a batch: its loss summed over the rows; `scale` times the term's gradient added into
    /// dZ (B, E) and dCentres (K, E). `indices` are the batch's samples.
    func lossAndGradient(z: UnsafePointer<Float>, rows: Int, indices: ArraySlice<Int32>, centres: UnsafePointer<Float>,
                         scale: Float, dZ: UnsafeMutablePointer<Float>, dCentres: UnsafeMutablePointer<Float>) -> Double
    /// DKM's softmax sharpness, nil for the others (records show it; model.bin keeps it so predict assigns alike).
    var sharpness: Float? { get set }
    /// What dec-state.bin keeps of the objective, and gives back on resume.
    var state: [String: [Float]] { get }
    /// The sections of `state` and their lengths for N samples: the run state's decoder checks them (lengths, and
    /// values in [0, 1]: they are distributions over the clusters) before `restore`.
    func stateLengths(samples: Int) -> [String: Int]
    func restore(_ state: [String: [Float]])
}

/// The objective of `options.method`, with scratch for batches of up to `rows` rows.
func makeObjective(_ options: DECOptions, rows: Int, embedding: Int) -> FineTuningObjective {
    switch options.method {
    case .dec: return DECObjective(clusters: options.clusters, embedding: embedding, rows: rows, confidence: options.confidence)
    case .idec: return IDECObjective(clusters: options.clusters, embedding: embedding, rows: rows, gamma: options.clusteringWeight,
                                     confidence: options.confidence)
    case .dkm: return DKMObjective(options, embedding: embedding, rows: rows)
    }
}
