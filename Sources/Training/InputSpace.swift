// Clustering in input space (the report's Tasks 0 and 1): soft k-means with softmax weights or with free weights,
// trained by mini-batch SGD/Adam, data-parallel. Gradient layout: [centres (K, D) | the batch's free-weight gradients
// (B, K), each rank's rows at their place | statistics]; one allreduce per step. The free weights themselves are rows
// on the probability simplex, moved by a projected gradient step (not softmax logits). N = points, D = dims,
// K = clusters, B = global batch.
import Clustering
import Collective
import CollectiveMPI
import Datasets
import Foundation
import NN
import Report
import Tensor

public enum InputMethod: String, Sendable, CaseIterable {
    case softmax, free, kmeans
    /// N2D on the input: UMAP of the points, then a Gaussian mixture on the layout (no training).
    case n2d
}
public enum CentreInit: String, Sendable, CaseIterable { case kmeanspp, random }

public struct InputClusteringOptions: Sendable {
    public var clusters = 10
    public var epochs = 50
    public var batchSize = 256
    public var optimizer: OptimizerKind = .sgd
    public var learningRate: Float = 0.1
    public var seed: UInt64 = 0
    public var alpha: Float = 10
    public var method: InputMethod = .softmax
    public var initialization: CentreInit = .kmeanspp
    /// k-means++ draws to choose the initial centres from (the lowest potential wins).
    public var seedings = 10
    /// Free weights: the projected step on w is eta = weightLearningRate / (mean spread of the distances).
    public var weightLearningRate: Float = 100
    public init() {}
}

public struct EpochRecord: Sendable {
    public var epoch: Int
    public var loss: Double
    public var scores: ClusteringScores
}

public final class InputClusterer {
    let context: RunContext
    let points: [Float]          // (N, D)
    let labels: [Int32]
    let classes: Int
    let count: Int, dims: Int
    let options: InputClusteringOptions
    let store: ParameterStore
    /// The gradients, then the statistics bucket (the loss sum), summed by one blocking allreduce per step.
    let transport: GradientTransport
    let optimizer: Optimizer
    let batchGradients: Int      // offset of (B, K)
    let statistics: Int
    var sampler: Sampler
    /// Free weights: w (N, K), each row on the probability simplex, the same on every rank.
    var weights: [Float] = []
    var distanceScale: Float = 1
    public private(set) var history: [EpochRecord] = []
    public private(set) var assignments: [Int32] = []

    public init(context: RunContext, points: [Float], labels: [Int32], classes: Int, dims: Int, options: InputClusteringOptions) throws {
        precondition(options.method != .kmeans)
        self.context = context
        self.points = points
        self.labels = labels
        self.classes = classes
        self.dims = dims
        self.count = labels.count
        self.options = options
        var layout = ParameterLayout()
        let centres = layout.reserve(options.clusters * dims)
        batchGradients = layout.reserve(options.batchSize * options.clusters)
        statistics = layout.count
        transport = try GradientTransports.make(context.communicator, count: layout.count + Model.statisticsCount, overlap: false)
        store = ParameterStore(layout: layout, gradients: transport.gradients)
        optimizer = Optimizer(kind: options.optimizer, learningRate: options.learningRate,
                              range: centres..<(centres + options.clusters * dims))
        sampler = Sampler(count: count, globalBatch: options.batchSize, seed: options.seed, rank: context.rank, ranks: context.ranks)
        try initialize()
    }

    var centreRange: Range<Int> { 0..<(options.clusters * dims) }

    func initialize() throws {
        let k = options.clusters
        var rng = Xoshiro256(seed: options.seed, stream: 0x494E_4954)
        let centres: [Float] = points.withUnsafeBufferPointer { p in
            switch options.initialization {
            case .kmeanspp:
                // The best of `seedings` k-means++ draws (lowest potential), as scikit-learn's n_init does for k-means.
                var best = [Float](), bestPotential = Double.infinity
                var distances = [Float](repeating: 0, count: count * k)
                for _ in 0..<max(options.seedings, 1) {
                    let candidate = KMeans.plusPlus(points: p.baseAddress!, count: count, dims: dims, clusters: k, rng: &rng)
                    KMeans.squaredDistances(points: p.baseAddress!, rows: count, dims: dims, centres: candidate, clusters: k, into: &distances)
                    var potential = 0.0
                    for i in 0..<count { potential += Double(distances[(i * k)..<((i + 1) * k)].min()!) }
                    if potential < bestPotential { bestPotential = potential; best = candidate }
                }
                return best
            case .random:
                var c = [Float]()
                for _ in 0..<k { let i = rng.nextInt(below: count); c += p[(i * dims)..<((i + 1) * dims)] }
                return c
            }
        }
        store.setParameters(centres, at: 0)
        if options.method == .free {
            // Parametrisation: projected gradient on the simplex, w_i <- P(w_i - eta d_i). Softmax logits would keep w on
            // the simplex too, but their gradient w_ik (d_ik - dbar_i) vanishes as w_i nears a vertex, so a sample
            // cannot follow when another centre becomes nearer; the projected step never saturates: it moves a sample
            // once its distance gap exceeds 1/eta. The weights start one-hot at the nearest initial centre. Uniform
            // weights (as in the report) pull every centre to the data mean, which is the collapse it saw.
            var distances = [Float](repeating: 0, count: count * k)
            points.withUnsafeBufferPointer { p in
                KMeans.squaredDistances(points: p.baseAddress!, rows: count, dims: dims, centres: store.parameters, clusters: k, into: &distances)
            }
            var spread = 0.0
            weights = [Float](repeating: 0, count: count * k)
            for i in 0..<count {
                let row = distances[(i * k)..<((i + 1) * k)]
                let mean = row.reduce(0, +) / Float(k)
                spread += Double(row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(k)).squareRoot()
                weights[i * k + row.indices.min(by: { row[$0] < row[$1] })! - i * k] = 1
            }
            distanceScale = Float(max(spread / Double(count), 1e-12))
        }
    }

    /// One global batch; returns the summed loss over its rows (every rank).
    func step(batch b: Int, scratch: inout Scratch) throws -> Double {
        let k = options.clusters
        let (global, local) = sampler.batch(b)
        let rows = local.count
        for (r, index) in sampler.permutation[local].enumerated() {
            let source = Int(index) * dims
            for d in 0..<dims { scratch.x[r * dims + d] = points[source + d] }
            if options.method == .free { for c in 0..<k { scratch.freeWeights[r * k + c] = weights[Int(index) * k + c] } }
        }
        store.zeroGradients(0..<store.count)
        transport.beginStep()
        KMeans.squaredDistances(points: scratch.x, rows: rows, dims: dims, centres: store.parameters, clusters: k, into: &scratch.distances)
        let loss: Double
        if options.method == .softmax {
            loss = SoftKMeans.softmaxLoss(distances: scratch.distances, rows: rows, clusters: k, alpha: options.alpha,
                                          weights: &scratch.weights, dDistances: &scratch.dDistances)
        } else {
            // This rank's rows sit at their place within the global batch.
            let offset = batchGradients + (local.lowerBound - global.lowerBound) * k
            loss = SoftKMeans.freeWeightLoss(distances: scratch.distances, weights: scratch.freeWeights, rows: rows, clusters: k,
                                             dDistances: &scratch.dDistances, dWeights: store.gradients + offset)
        }
        SoftKMeans.centreGradient(points: scratch.x, rows: rows, dims: dims, centres: store.parameters, clusters: k,
                                  dDistances: scratch.dDistances, scale: 1 / Float(global.count), into: store.gradients)
        transport.gradients[statistics] = Float(loss)
        try transport.bucketReady(0..<transport.count)
        try transport.finish()
        let total = Double(transport.gradients[statistics])
        try context.policy.requireFinite(total, quantity: "soft k-means loss", step: b)
        optimizer.update(store)
        if options.method == .free {
            let rate = options.weightLearningRate / distanceScale
            weights.withUnsafeMutableBufferPointer { w in
                for (j, index) in sampler.permutation[global].enumerated() {
                    let row = w.baseAddress! + Int(index) * k
                    for c in 0..<k { row[c] -= rate * store.gradients[batchGradients + j * k + c] }
                    SoftKMeans.projectOntoSimplex(row, count: k)
                }
            }
        }
        return total
    }

    struct Scratch {
        var x: [Float], freeWeights: [Float], distances: [Float], weights: [Float], dDistances: [Float]
    }

    /// Hard assignments of every point: each rank its slice, then allgatherv.
    public func assign() throws -> [Int32] {
        let k = options.clusters
        let slice = contiguousShare(total: count, rank: context.rank, size: context.ranks)
        var local = [Int](repeating: 0, count: slice.count)
        if options.method == .free {
            for (r, i) in slice.enumerated() {
                var best = 0
                for c in 1..<k where weights[i * k + c] > weights[i * k + best] { best = c }
                local[r] = best
            }
        } else {
            var distances = [Float](repeating: 0, count: max(slice.count, 1) * k)
            points.withUnsafeBufferPointer { p in
                KMeans.squaredDistances(points: p.baseAddress! + slice.lowerBound * dims, rows: slice.count, dims: dims,
                                        centres: store.parameters, clusters: k, into: &distances)
            }
            for r in 0..<slice.count {
                var best = 0
                for c in 1..<k where distances[r * k + c] < distances[r * k + best] { best = c }
                local[r] = best
            }
        }
        return try context.communicator.allgatherv(local).map { Int32($0) }
    }

    public var centres: [Float] { store.parameterArray(centreRange) }

    public func run(label: String) throws {
        let maxRows = largestShare(total: options.batchSize, size: context.ranks)
        let k = options.clusters
        var scratch = Scratch(x: [Float](repeating: 0, count: maxRows * dims), freeWeights: [Float](repeating: 0, count: maxRows * k),
                              distances: [Float](repeating: 0, count: maxRows * k), weights: [Float](repeating: 0, count: maxRows * k),
                              dDistances: [Float](repeating: 0, count: maxRows * k))
        assignments = try assign()
        let initial = Metrics.scores(predicted: assignments, labels: labels, clusters: k, classes: classes)
        history.append(EpochRecord(epoch: 0, loss: .nan, scores: initial))
        for epoch in 0..<options.epochs {
            let started = Clock.now
            sampler.shuffle(epoch: epoch)
            var loss = 0.0
            for b in 0..<sampler.batchesPerEpoch { loss += try step(batch: b, scratch: &scratch) }
            assignments = try assign()
            let scores = Metrics.scores(predicted: assignments, labels: labels, clusters: k, classes: classes)
            let seconds = Clock.now - started
            history.append(EpochRecord(epoch: epoch + 1, loss: loss / Double(count), scores: scores))
            let sizes = (0..<k).map { c in assignments.lazy.filter { $0 == c }.count }
            var record = RunRecord(phase: label)
            record.epoch = Double(epoch + 1)
            record.loss = loss / Double(count)
            record.setScores(accuracy: scores.accuracy, nmi: scores.nmi, ari: scores.ari)
            record.seconds = seconds
            record.samplesPerS = Double(count) / seconds
            record.nonemptyClusters = sizes.filter { $0 > 0 }.count
            context.record(record)
            if (epoch + 1) % max(1, options.epochs / 10) == 0 || epoch == 0 || epoch + 1 == options.epochs {
                context.say(String(format: "%@ epoch %3d/%d  loss %.4f  ACC %.4f  NMI %.4f  ARI %.4f  clusters used %d",
                                   label, epoch + 1, options.epochs, loss / Double(count), scores.accuracy, scores.nmi, scores.ari,
                                   sizes.filter { $0 > 0 }.count))
            }
        }
    }
}

/// Three seeded Gaussian blobs in 2-D (centres on a circle of radius 4), z-scored; labels are the blob.
public func gaussianBlobs(perBlob: Int, spread: Double, seed: UInt64) -> (points: [Float], labels: [Int32]) {
    var rng = Xoshiro256(seed: seed, stream: 0x424C_4F42)
    var raw = [Double](), labels = [Int32]()
    for blob in 0..<3 {
        let angle = Double.pi / 2 + Double(blob) * 2 * Double.pi / 3
        for _ in 0..<perBlob {
            raw += [4 * cos(angle) + spread * rng.nextNormal(), 4 * sin(angle) + spread * rng.nextNormal()]
            labels.append(Int32(blob))
        }
    }
    var points = [Float](repeating: 0, count: raw.count)
    for d in 0..<2 {
        let column = stride(from: d, to: raw.count, by: 2).map { raw[$0] }
        let mean = column.reduce(0, +) / Double(column.count)
        let std = (column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(column.count)).squareRoot()
        for i in stride(from: d, to: raw.count, by: 2) { points[i] = Float((raw[i] - mean) / max(std, 1e-12)) }
    }
    return (points, labels)
}
