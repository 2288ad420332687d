// A Gaussian mixture with full covariances, fitted by EM (as scikit-learn's GaussianMixture: k-means
// initialisation, reg_covar 1e-6 on the diagonals, stop when the mean log-likelihood moves less than 1e-3).
// N2D's last step: clusters of any ellipsoidal shape and orientation in the UMAP layout, where k-means assumes
// spheres. In Double, deterministic. Split over ranks and threads by fixed chunks of points: each rank computes the
// responsibilities of its chunks (the E-step) and the sufficient statistics of the M-step are summed chunk by chunk and
// then over the chunks in order (RowChunks.sum), so the fit is the same bits on any number of ranks and threads.
// N = points, D = dims, K = components.
import Collective
import Foundation
import Tensor

public struct GaussianMixtureResult: Sendable {
    public var assignments: [Int32]      // (N): the most probable component
    public var responsibilities: [Float] // (N, K): posterior probabilities
    public var means: [Double]           // (K, D)
    public var weights: [Double]         // (K)
    public var cholesky: [Double]        // (K, D, D): lower factors of the covariances
    public var logLikelihood: Double     // mean per point
    public var iterations: Int
    public var converged: Bool
}

public enum GaussianMixture {
    /// EM iterations a fit runs at most unless told otherwise.
    public static let maxIterations = 100

    /// Collective over `communicator` (every rank passes the same points), its rows on `threads` threads per rank;
    /// `chunkRows` (tests) overrides the size of the chunks of points.
    public static func fit(points: [Float], count n: Int, dims: Int, components k: Int, initial: [Int32],
                           maxIterations: Int = maxIterations, tolerance: Double = 1e-3, regularization: Double = 1e-6,
                           threads: Int = 1, communicator: Communicator = SingleProcessCommunicator(),
                           chunkRows: Int? = nil) throws -> GaussianMixtureResult {
        let x = points.map(Double.init)
        let rows = RowChunks(count: n, chunkRows: chunkRows ?? Self.chunkRows(count: n), communicator: communicator, threads: threads)
        var r = [Double](repeating: 0, count: n * k)        // responsibilities (N, K); this rank's rows after an E-step
        for i in 0..<n { r[i * k + Int(initial[i])] = 1 }
        var means = [Double](repeating: 0, count: k * dims), weights = [Double](repeating: 0, count: k)
        var cholesky = [Double](repeating: 0, count: k * dims * dims)  // lower factors of the covariances
        var previous = -Double.infinity, likelihood = -Double.infinity
        var iterations = 0, converged = false
        while iterations < maxIterations {
            try mStep(x, r, rows: rows, dims: dims, k: k, regularization: regularization, means: &means, weights: &weights,
                      cholesky: &cholesky)
            likelihood = try eStep(x, rows: rows, dims: dims, k: k, means: means, weights: weights, cholesky: cholesky, r: &r)
            iterations += 1
            if abs(likelihood - previous) < tolerance { converged = true; break }
            previous = likelihood
        }
        try rows.gather(&r, width: k)
        var assignments = [Int32](repeating: 0, count: n)
        for i in 0..<n {
            var best = 0
            for c in 1..<k where r[i * k + c] > r[i * k + best] { best = c }
            assignments[i] = Int32(best)
        }
        return GaussianMixtureResult(assignments: assignments, responsibilities: r.map(Float.init), means: means,
                                     weights: weights, cholesky: cholesky, logLikelihood: likelihood, iterations: iterations, converged: converged)
    }

    /// Points per chunk of the sums: all of them up to 20,000 (one chunk: the sums run in point order, as they did
    /// before the split), then a sixteenth, so that up to 16 threads over all ranks find work.
    static func chunkRows(count n: Int) -> Int { n <= 20_000 ? n : (n + 15) / 16 }

    /// The mean log-likelihood per point of `points` (N, D) under a fitted mixture, and the mean entropy of their
    /// posteriors (what ICL adds to BIC). On this thread.
    public static func score(_ fit: GaussianMixtureResult, points: [Float], count n: Int, dims: Int) throws -> (logLikelihood: Double, entropy: Double) {
        let k = fit.weights.count
        var r = [Double](repeating: 0, count: n * k)
        let rows = RowChunks(count: n, chunkRows: max(n, 1), communicator: SingleProcessCommunicator(), threads: 1)
        let likelihood = try eStep(points.map(Double.init), rows: rows, dims: dims, k: k, means: fit.means, weights: fit.weights,
                                   cholesky: fit.cholesky, r: &r)
        let entropy = r.reduce(0.0) { $1 > 0 ? $0 - $1 * log($1) : $0 } / Double(n)
        return (likelihood, entropy)
    }

    /// Weights, means and covariances from the responsibilities of this rank's rows; each covariance stored as its
    /// Cholesky factor. Collective.
    static func mStep(_ x: [Double], _ r: [Double], rows: RowChunks, dims: Int, k: Int, regularization: Double,
                      means: inout [Double], weights: inout [Double], cholesky: inout [Double]) throws {
        // Per component: its total responsibility (from 10 ulp, as scikit-learn, so that an empty component divides
        // by something; added before point 0's, where the unsplit sum began) and its weighted sum of points.
        let first = try rows.sum(width: k * (1 + dims)) { i, out in
            for c in 0..<k {
                let w = r[i * k + c], row = out + c * (1 + dims)
                if i == 0 { row[0] += 10 * Double.ulpOfOne }
                row[0] += w
                for d in 0..<dims { row[1 + d] += w * x[i * dims + d] }
            }
        }
        let totals = (0..<k).map { first[$0 * (1 + dims)] }
        let centres = (0..<k).flatMap { c in (0..<dims).map { first[c * (1 + dims) + 1 + $0] / totals[c] } }
        // The weighted scatter about each mean, its lower triangle.
        var scatter = try rows.sum(width: k * dims * dims) { i, out in
            for c in 0..<k {
                let w = r[i * k + c]
                guard w > 0 else { continue }
                let mean = c * dims, covariance = out + c * dims * dims
                for p in 0..<dims {
                    let dp = x[i * dims + p] - centres[mean + p]
                    for q in 0...p { covariance[p * dims + q] += w * dp * (x[i * dims + q] - centres[mean + q]) }
                }
            }
        }
        for c in 0..<k {
            let offset = c * dims * dims
            for p in 0..<dims {
                for q in 0...p { scatter[offset + p * dims + q] /= totals[c] }
                scatter[offset + p * dims + p] += regularization
            }
            weights[c] = totals[c] / Double(rows.count)
            factor(Array(scatter[offset..<(offset + dims * dims)]), dims: dims, into: &cholesky, at: offset)
        }
        means = centres
    }

    /// The lower Cholesky factor of a symmetric positive definite matrix (its lower triangle is read).
    static func factor(_ a: [Double], dims: Int, into l: inout [Double], at offset: Int) {
        for p in 0..<dims {
            for q in 0...p {
                var s = a[p * dims + q]
                for m in 0..<q { s -= l[offset + p * dims + m] * l[offset + q * dims + m] }
                if p == q {
                    l[offset + p * dims + p] = max(s, 1e-300).squareRoot()
                } else {
                    l[offset + p * dims + q] = s / l[offset + q * dims + q]
                }
            }
            for q in (p + 1)..<max(dims, p + 1) { l[offset + p * dims + q] = 0 }
        }
    }

    /// The responsibilities of this rank's rows from the current parameters; returns the mean log-likelihood per
    /// point over all rows. Collective.
    static func eStep(_ x: [Double], rows: RowChunks, dims: Int, k: Int, means: [Double], weights: [Double], cholesky: [Double],
                      r: inout [Double]) throws -> Double {
        let logTwoPi = log(2 * Double.pi)
        var logDeterminant = [Double](repeating: 0, count: k)
        for c in 0..<k {
            for d in 0..<dims { logDeterminant[c] += 2 * log(cholesky[c * dims * dims + d * dims + d]) }
        }
        let total = try r.withUnsafeMutableBufferPointer { rb in
            let r = SharedPointer(rb.baseAddress!)
            return try rows.sum(width: 1) { i, out in
                withUnsafeTemporaryAllocation(of: Double.self, capacity: dims + k) { scratch in
                    let z = scratch.baseAddress!, logp = z + dims
                    for c in 0..<k {
                        // Solve L z = x - mu; the Mahalanobis distance is |z|^2.
                        let l = c * dims * dims
                        var distance = 0.0
                        for p in 0..<dims {
                            var s = x[i * dims + p] - means[c * dims + p]
                            for q in 0..<p { s -= cholesky[l + p * dims + q] * z[q] }
                            z[p] = s / cholesky[l + p * dims + p]
                            distance += z[p] * z[p]
                        }
                        logp[c] = log(max(weights[c], 1e-300)) - 0.5 * (Double(dims) * logTwoPi + logDeterminant[c] + distance)
                    }
                    var top = logp[0]
                    for c in 1..<max(k, 1) { top = max(top, logp[c]) }
                    var sum = 0.0
                    for c in 0..<k { sum += exp(logp[c] - top) }
                    let norm = top + log(sum)
                    for c in 0..<k { r.base[i * k + c] = exp(logp[c] - norm) }
                    out[0] += norm
                }
            }
        }[0]
        return total / Double(rows.count)
    }
}
