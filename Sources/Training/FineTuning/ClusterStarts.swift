// The clusters fine-tuning starts from, found on the pretrained embedding Z: k-means++ and Lloyd (DEC as published),
// or N2D (McConville et al. 2020: UMAP of Z, then a full-covariance Gaussian mixture on the layout). Each gives the
// centres in the embedding, the start's scores and its record; N2D also the first target's clustering.
// E = embedding dims, K = clusters, N = samples.
import Clustering
import Collective
import Datasets
import Foundation
import Report
import Tensor

/// How the clusters that fine-tuning starts from are found on the pretrained embedding.
public enum ClusterStart: String, Sendable, CaseIterable {
    /// k-means++ and Lloyd on the embedding (DEC as published).
    case kmeans
    /// N2D (McConville et al. 2020): UMAP of the embedding, then a full-covariance Gaussian mixture on the layout.
    case n2d
}

/// A start: the centres (K, E), the start's clustering scores, what the run prints and records of it, and, for
/// N2D, the clustering the first target update uses instead of a pass over the model (the mixture's posteriors).
public struct StartingClusters {
    public var centres: [Float]
    /// The start's clustering (N): k-means' nearest centres, or the mixture's most probable components.
    public var assignments: [Int32]
    public var scores: ClusteringScores
    public var firstPass: ClusteringPass?
    public var summary: String
    public var record: RunRecord
}

public enum ClusterStarts {
    /// The start `options.start` on the embedding `z` (N, E), the same on every rank. `layout`: N2D's UMAP layout
    /// of `z` when it is already made (by the choice of K).
    public static func find(_ z: [Float], data: DataSet, embedding e: Int, options: DECOptions, layout: UMAP.Embedding? = nil,
                            communicator: Communicator) throws -> StartingClusters {
        switch options.start {
        case .kmeans: try kmeans(z, data: data, embedding: e, options: options, communicator: communicator)
        case .n2d: try n2d(z, data: data, embedding: e, options: options, layout: layout, communicator: communicator)
        }
    }

    /// The UMAP of N2D's start: the recipe's, seeded with the run's seed.
    static func umapOptions(_ options: DECOptions) -> UMAPOptions {
        var umap = options.umap
        umap.seed = options.seed
        return umap
    }

    /// k-means++ and Lloyd, restarts spread over the ranks; the best centres everywhere.
    static func kmeans(_ z: [Float], data: DataSet, embedding e: Int, options: DECOptions,
                       communicator: Communicator) throws -> StartingClusters {
        let started = Clock.now
        let result = try z.withUnsafeBufferPointer { zp in
            try KMeans.fit(points: zp.baseAddress!, count: data.count, dims: e, clusters: options.clusters,
                           restarts: options.restarts, seed: options.seed, communicator: communicator, spreadRestarts: true,
                           threads: BLAS.threads)
        }
        let scores = data.scores(result.assignments, clusters: options.clusters)
        var record = RunRecord(phase: "kmeans-embedding")
        record.setScores(accuracy: scores.accuracy, nmi: scores.nmi, ari: scores.ari)
        record.inertia = result.inertia
        let summary = String(format: "k-means on the embedding (%d restarts over %d rank(s), inertia %.4g, %.1fs): %@",
                             options.restarts, communicator.size, result.inertia, Clock.now - started, scores.text)
        return StartingClusters(centres: result.centres, assignments: result.assignments, scores: scores, firstPass: nil, summary: summary, record: record)
    }

    /// The baseline every `dec` run shows beside its start and its result: k-means++ and Lloyd on the input itself
    /// (as the model sees it: pixels in [0, 1], features standardised), restarts spread over the ranks and their
    /// threads; on at most `baselineSamples` evenly spaced samples, scored on those.
    public static func kmeansOnInput(data: DataSet, options: DECOptions, communicator: Communicator) throws -> (scores: ClusteringScores, record: RunRecord, summary: String) {
        let started = Clock.now
        let limit = baselineSamples(dimension: data.dimension)
        let sample = data.evenlySpaced(limit)
        let x = sample.floats(.unit)  // (N, D)
        let restarts = baselineRestarts(options.restarts, count: sample.count)
        let result = try x.withUnsafeBufferPointer { p in
            try KMeans.fit(points: p.baseAddress!, count: sample.count, dims: sample.dimension, clusters: options.clusters,
                           restarts: restarts, seed: options.seed, communicator: communicator, spreadRestarts: true,
                           threads: BLAS.threads)
        }
        let scores = sample.scores(result.assignments, clusters: options.clusters)
        let seconds = Clock.now - started
        var record = RunRecord(phase: "kmeans-input")
        record.setScores(accuracy: scores.accuracy, nmi: scores.nmi, ari: scores.ari)
        record.inertia = result.inertia
        record.seconds = seconds
        let share = sample.count < data.count ? "\(sample.count) of the \(data.count) samples, evenly spaced; " : ""
        let summary = String(format: "k-means on the input (%@%d restarts over %d rank(s), %.1fs): %@", share, restarts,
                             communicator.size, seconds, scores.text)
        return (scores, record, summary)
    }

    /// The input baseline's samples at most: its Float copy of the input takes 4 bytes a value on every rank (a
    /// million MNIST images: 3.1 GB a rank, where the bytes the run trains on take 784 MB), for a reference score; so
    /// at most 200,000 samples and 256 MB of Floats (MNIST's 784 pixels: 85,598 samples, full MNIST whole).
    static func baselineSamples(dimension: Int) -> Int {
        min(200_000, (256 << 20) / (4 * max(dimension, 1)))
    }

    /// Restarts of the input baseline: --restarts up to 10,000 samples, then as many as cost about 200,000 samples'
    /// worth (at least 2): a reference score, not the start, and on full MNIST its 20 restarts took 93 s of a 6m37s
    /// fine-tuning run on 2 ranks.
    static func baselineRestarts(_ restarts: Int, count n: Int) -> Int {
        min(restarts, max(2, 200_000 / max(n, 1)))
    }

    /// N2D: the centres are the mixture's clusters' posterior-weighted means in the embedding, and the first target
    /// distribution comes from its posteriors.
    static func n2d(_ z: [Float], data: DataSet, embedding e: Int, options: DECOptions, layout given: UMAP.Embedding?,
                    communicator: Communicator) throws -> StartingClusters {
        let started = Clock.now
        let n = data.count, k = options.clusters
        let umap = umapOptions(options)
        let found = try N2D.cluster(points: z, count: n, dims: e, clusters: k, umap: umap, restarts: options.restarts, layout: given,
                                    communicator: communicator)
        let mixture = found.mixture
        var centres = [Double](repeating: 0, count: k * e), totals = [Double](repeating: 0, count: k)  // (K, E), (K)
        for i in 0..<n {
            for c in 0..<k {
                let w = Double(mixture.responsibilities[i * k + c])
                totals[c] += w
                for d in 0..<e { centres[c * e + d] += w * Double(z[i * e + d]) }
            }
        }
        let scores = data.scores(mixture.assignments, clusters: k)
        let seconds = Clock.now - started
        var record = RunRecord(phase: "n2d-embedding")
        record.setScores(accuracy: scores.accuracy, nmi: scores.nmi, ari: scores.ari)
        record.seconds = seconds
        record.stageSeconds = found.stages
        let summary = String(format: "N2D on the embedding (UMAP to %d dimensions, %d neighbours%@; Gaussian mixture; %.1fs: %@): %@",
                             umap.components, umap.neighbors, given == nil ? "" : ", the layout of the choice of K", seconds, found.timings,
                             scores.text)
        return StartingClusters(centres: (0..<(k * e)).map { Float(centres[$0] / max(totals[$0 / e], 1e-12)) },
                                assignments: mixture.assignments, scores: scores,
                                firstPass: ClusteringPass(embedding: z, q: mixture.responsibilities, assignments: mixture.assignments,
                                                          scores: scores),
                                summary: summary, record: record)
    }
}
