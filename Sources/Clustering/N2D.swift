// N2D's clustering (McConville et al. 2020) of any points: their UMAP layout, k-means on it (restarts over the
// ranks), then a full-covariance Gaussian mixture started from k-means. The DEC start runs it on the pretrained
// codes; `raw --method n2d` on the input itself (features a user already has). N = points, D = dims, K = clusters.
import Collective
import Foundation
import Tensor

public enum N2D {
    public struct Result: Sendable {
        public var embedding: UMAP.Embedding
        public var mixture: GaussianMixtureResult
        public var kmeansSeconds: Double
        public var mixtureSeconds: Double

        /// Seconds by stage, as metrics.jsonl records them.
        public var stages: [String: Double] {
            ["neighbours": embedding.neighbourSeconds, "graph": embedding.graphSeconds, "layout": embedding.layoutSeconds, "spectral": embedding.spectralSeconds,
             "kmeans": kmeansSeconds, "mixture": mixtureSeconds]
        }

        /// "neighbours 1.2s (exact), graph 0.3s, layout 4.5s; k-means 0.2s; mixture 0.9s (12 EM iterations)"
        public var timings: String {
            embedding.timings + String(format: "; k-means %.1fs; mixture %.1fs (%d EM iterations)", kmeansSeconds, mixtureSeconds,
                                       mixture.iterations)
        }
    }

    /// Collective. `layout`: the UMAP of `points` when it is already made (by the choice of K).
    public static func cluster(points: [Float], count n: Int, dims: Int, clusters k: Int, umap: UMAPOptions, restarts: Int,
                               layout given: UMAP.Embedding? = nil, communicator: Communicator) throws -> Result {
        try points.withUnsafeBufferPointer {
            try cluster(points: $0, count: n, dims: dims, clusters: k, umap: umap, restarts: restarts, layout: given,
                        communicator: communicator)
        }
    }

    /// As above, of points the caller holds (a data set's shared samples, read without a copy). Collective.
    public static func cluster(points: UnsafeBufferPointer<Float>, count n: Int, dims: Int, clusters k: Int, umap: UMAPOptions,
                               restarts: Int, layout given: UMAP.Embedding? = nil, communicator: Communicator) throws -> Result {
        let embedding = try given ?? UMAP.embed(points: points, count: n, dims: dims, options: umap, communicator: communicator)
        return try cluster(embedding: embedding, count: n, clusters: k, umap: umap, restarts: restarts, communicator: communicator)
    }

    /// As above, of image pixels read as pixels / 255 (`UMAP.embed(pixels:)`: NN-descent searches the bytes). Collective.
    public static func cluster(pixels: UnsafeBufferPointer<UInt8>, count n: Int, dims: Int, clusters k: Int, umap: UMAPOptions,
                               restarts: Int, communicator: Communicator) throws -> Result {
        let embedding = try UMAP.embed(pixels: pixels, count: n, dims: dims, options: umap, communicator: communicator)
        return try cluster(embedding: embedding, count: n, clusters: k, umap: umap, restarts: restarts, communicator: communicator)
    }

    /// k-means on the layout, then the mixture from it. Collective.
    static func cluster(embedding: UMAP.Embedding, count n: Int, clusters k: Int, umap: UMAPOptions, restarts: Int,
                        communicator: Communicator) throws -> Result {
        var started = Clock.now
        let start = try embedding.layout.withUnsafeBufferPointer { p in
            try KMeans.fit(points: p.baseAddress!, count: n, dims: umap.components, clusters: k, restarts: restarts,
                           seed: umap.seed, communicator: communicator, spreadRestarts: true)
        }
        let kmeansSeconds = Clock.now - started
        started = Clock.now
        let mixture = try GaussianMixture.fit(points: embedding.layout, count: n, dims: umap.components, components: k,
                                              initial: start.assignments, threads: BLAS.threads, communicator: communicator)
        return Result(embedding: embedding, mixture: mixture, kmeansSeconds: kmeansSeconds, mixtureSeconds: Clock.now - started)
    }
}
