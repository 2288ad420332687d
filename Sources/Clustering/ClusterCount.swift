// How many clusters: the integrated completed likelihood (ICL, Biernacki et al. 2000: BIC plus twice the posteriors'
// entropy, so overlapping components that split one cluster cost) of a full-covariance Gaussian mixture on the N2D
// layout, swept over K. Chosen by measurement on the layouts of the start: BIC alone keeps growing with K there (the
// layout's clusters are thin sheets a Gaussian fits ever tighter), so the covariances carry a floor of 0.1 in layout
// units (UMAP's fixed scale) and the entropy term keeps torn halves of one cluster together.
// Each K is fitted on a seeded subsample and scored on every point. One EM fit per K left the curve's least at the
// mercy of EM's local optimum: on the layouts of 21 runs (9 data sets) and 8 sweep seeds each, a K's ICL moved by
// 0.01-0.05 per point from seed to seed, enough to move MNIST-10k's choice off 10 in 2 of 40 sweeps. So each K starts
// three mixtures from three k-means starts, runs each 3 EM iterations, and runs the most likely on to convergence:
// MNIST-10k 10 in 40 of 40, every layout's choice the same as with three fits to convergence, at 0.73x their cost.
// N = points, D = dims, K = components.
import Collective
import Dispatch
import Foundation
import Tensor

public struct ClusterCountOptions: Sendable {
    public var smallest = 2
    public var largest = 30
    /// Points the mixtures are fitted on (all of them when there are fewer); every point is scored.
    public var sample = 2500
    /// The covariance floor, in layout units.
    public var regularization = 0.1
    /// The sweep stops this many K past the best one so far.
    public var patience = 5
    /// k-means++ starts of each K's mixture (the best inertia's).
    public var restarts = 3
    /// Mixtures started per K from different k-means starts; the most likely on the sample is scored (`bestFit`).
    public var fits = 3
    /// EM iterations each of several fits runs before the most likely runs on to convergence (0: each fit runs to
    /// convergence, at most `GaussianMixture.maxIterations` iterations).
    public var screenIterations = 3
    public var seed: UInt64 = 0
    public init() {}
}

public struct ClusterCountChoice: Sendable {
    public var clusters: Int
    /// (K, ICL per point: lower is better) for every K tried, in order.
    public var criterion: [(clusters: Int, icl: Double)]
}

public enum ClusterCount {
    /// The K of least ICL on `layout` (N, D). Collective: the ranks and their `threads` take the K of the sweep in
    /// turns (thread t of rank r fits K = next + r * threads + t), a round at a time, and gather each round's values;
    /// every K's fit depends on (seed, K) alone and the stop is decided in K order, so the choice and every value are
    /// the same on any number of ranks and threads.
    public static func choose(layout: [Float], count n: Int, dims: Int, options: ClusterCountOptions, threads: Int = 1,
                              communicator: Communicator) throws -> ClusterCountChoice {
        precondition(n >= 1 && dims >= 1 && options.sample >= 1 && options.restarts >= 1 && options.smallest >= 2)
        let largest = largestTried(options, count: n)
        var rng = Xoshiro256(seed: options.seed ^ 0x4b43)
        var order = Array(0..<n)
        if options.sample < n {
            for i in 0..<options.sample { order.swapAt(i, i + Int(rng.next() % UInt64(n - i))) }
        }
        let sample = Array(order.prefix(min(options.sample, n))).sorted()
        let fitted = sample.flatMap { i in layout[(i * dims)..<((i + 1) * dims)] }
        // Every rank must cut the rounds alike; each thread's products run on one BLAS thread (the bits of a product
        // do not depend on OpenBLAS's thread count).
        let threads = try communicator.allreduce(max(1, threads), .min)
        let blasThreads = BLAS.threads
        BLAS.threads = 1
        defer { BLAS.threads = blasThreads }
        var criterion: [(clusters: Int, icl: Double)] = []
        var best = (clusters: options.smallest, icl: Double.infinity)
        var next = options.smallest
        sweep: while next <= largest {
            let first = next + communicator.rank * threads
            var values = [Double](repeating: .nan, count: threads)
            var failures = [Error?](repeating: nil, count: threads)
            values.withUnsafeMutableBufferPointer { out in
                failures.withUnsafeMutableBufferPointer { errors in
                    let out = SharedPointer(out.baseAddress!), errors = SharedPointer(errors.baseAddress!)
                    DispatchQueue.concurrentPerform(iterations: threads) { t in
                        guard first + t <= largest else { return }
                        do {
                            out.base[t] = try icl(of: first + t, fitted: fitted, sampleCount: sample.count, layout: layout, count: n,
                                                  dims: dims, options: options)
                        } catch { errors.base[t] = error }
                    }
                }
            }
            // A failed or non-finite fit is every rank's error, after the round's collective (no rank left waiting).
            let round = try communicator.allgatherv(values)  // in rank order: K in order
            if let failed = round.indices.first(where: { next + $0 <= largest && !round[$0].isFinite }) {
                let reason = failures.compactMap { $0 }.first.map { ": \($0)" } ?? ""
                throw RunError("the choice of K: the mixture with K = \(next + failed) gave no finite ICL\(reason)", everyRank: true)
            }
            for (offset, icl) in round.enumerated() where next + offset <= largest {
                let k = next + offset
                criterion.append((k, icl))
                if icl < best.icl { best = (k, icl) }
                if k - best.clusters >= options.patience { break sweep }
            }
            next += communicator.size * threads
        }
        return ClusterCountChoice(clusters: best.clusters, criterion: criterion)
    }

    /// The largest K the sweep may try: MAX, or a tenth of the points when that is less (and at least the smallest).
    public static func largestTried(_ options: ClusterCountOptions, count n: Int) -> Int {
        min(options.largest, max(options.smallest, n / 10))
    }

    /// The numbers a full-covariance component holds in `dims` dimensions: weight, mean, covariance.
    public static func parametersPerComponent(dims: Int) -> Int { 1 + dims + dims * (dims + 1) / 2 }

    /// ICL per point of a K-component mixture fitted on the sample (`bestFit`) and scored on every point.
    static func icl(of k: Int, fitted: [Float], sampleCount: Int, layout: [Float], count n: Int, dims: Int,
                    options: ClusterCountOptions) throws -> Double {
        let mixture = try bestFit(of: k, fitted: fitted, sampleCount: sampleCount, dims: dims, options: options)
        let (likelihood, entropy) = try GaussianMixture.score(mixture, points: layout, count: n, dims: dims)
        let parameters = Double(k * parametersPerComponent(dims: dims) - 1)
        return -2 * likelihood + parameters * log(Double(n)) / Double(n) + 2 * entropy
    }

    /// Of `options.fits` mixtures, each started from k-means++ and Lloyd (the best of `options.restarts`), the one of
    /// highest likelihood on the sample. With screening, each runs `options.screenIterations` EM iterations and the most
    /// likely then runs from its start to convergence (the same mixture as if it had run on); without, each converges.
    static func bestFit(of k: Int, fitted: [Float], sampleCount: Int, dims: Int, options: ClusterCountOptions) throws -> GaussianMixtureResult {
        let fits = max(1, options.fits)
        let screened = fits > 1 && options.screenIterations > 0
        let limit = GaussianMixture.maxIterations
        var best: (mixture: GaussianMixtureResult, start: [Int32])?
        for fit in 0..<fits {
            let start = try fitted.withUnsafeBufferPointer { p in
                try KMeans.fit(points: p.baseAddress!, count: sampleCount, dims: dims, clusters: k, restarts: options.restarts,
                               seed: options.seed &+ UInt64(k) &+ UInt64(fit) &* 0x9e37, communicator: SingleProcessCommunicator(),
                               spreadRestarts: false).assignments
            }
            let candidate = try GaussianMixture.fit(points: fitted, count: sampleCount, dims: dims, components: k, initial: start,
                                                    maxIterations: screened ? options.screenIterations : limit,
                                                    regularization: options.regularization)
            if best == nil || candidate.logLikelihood > best!.mixture.logLikelihood { best = (candidate, start) }
        }
        guard let best else { preconditionFailure("at least one fit") }
        guard screened, !best.mixture.converged else { return best.mixture }
        return try GaussianMixture.fit(points: fitted, count: sampleCount, dims: dims, components: k, initial: best.start,
                                       maxIterations: limit, regularization: options.regularization)
    }
}
