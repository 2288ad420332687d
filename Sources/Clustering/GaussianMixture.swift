// A Gaussian mixture with full covariances, fitted by EM (as scikit-learn's GaussianMixture: k-means
// initialisation, reg_covar 1e-6 on the diagonals, stop when the mean log-likelihood moves less than 1e-3).
// N2D's last step: clusters of any ellipsoidal shape and orientation in the UMAP layout, where k-means assumes
// spheres. In Double, deterministic, the same on every rank. N = points, D = dims, K = components.
import Foundation

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
    public static func fit(points: [Float], count n: Int, dims: Int, components k: Int, initial: [Int32],
                           maxIterations: Int = 100, tolerance: Double = 1e-3, regularization: Double = 1e-6) -> GaussianMixtureResult {
        let x = points.map(Double.init)
        var r = [Double](repeating: 0, count: n * k)        // responsibilities (N, K)
        for i in 0..<n { r[i * k + Int(initial[i])] = 1 }
        var means = [Double](repeating: 0, count: k * dims), weights = [Double](repeating: 0, count: k)
        var cholesky = [Double](repeating: 0, count: k * dims * dims)  // lower factors of the covariances
        var previous = -Double.infinity, likelihood = -Double.infinity
        var iterations = 0, converged = false
        while iterations < maxIterations {
            mStep(x, r, n: n, dims: dims, k: k, regularization: regularization, means: &means, weights: &weights, cholesky: &cholesky)
            likelihood = eStep(x, n: n, dims: dims, k: k, means: means, weights: weights, cholesky: cholesky, r: &r)
            iterations += 1
            if abs(likelihood - previous) < tolerance { converged = true; break }
            previous = likelihood
        }
        var assignments = [Int32](repeating: 0, count: n)
        for i in 0..<n {
            var best = 0
            for c in 1..<k where r[i * k + c] > r[i * k + best] { best = c }
            assignments[i] = Int32(best)
        }
        return GaussianMixtureResult(assignments: assignments, responsibilities: r.map(Float.init), means: means,
                                     weights: weights, cholesky: cholesky, logLikelihood: likelihood, iterations: iterations, converged: converged)
    }

    /// The mean log-likelihood per point of `points` (N, D) under a fitted mixture, and the mean entropy of their
    /// posteriors (what ICL adds to BIC).
    public static func score(_ fit: GaussianMixtureResult, points: [Float], count n: Int, dims: Int) -> (logLikelihood: Double, entropy: Double) {
        let k = fit.weights.count
        var r = [Double](repeating: 0, count: n * k)
        let likelihood = eStep(points.map(Double.init), n: n, dims: dims, k: k, means: fit.means, weights: fit.weights,
                               cholesky: fit.cholesky, r: &r)
        let entropy = r.reduce(0.0) { $1 > 0 ? $0 - $1 * log($1) : $0 } / Double(n)
        return (likelihood, entropy)
    }

    /// Weights, means and covariances from the responsibilities; each covariance stored as its Cholesky factor.
    static func mStep(_ x: [Double], _ r: [Double], n: Int, dims: Int, k: Int, regularization: Double,
                      means: inout [Double], weights: inout [Double], cholesky: inout [Double]) {
        for c in 0..<k {
            var total = 10 * Double.ulpOfOne  // as scikit-learn, so an empty component divides by something
            var mean = [Double](repeating: 0, count: dims)
            for i in 0..<n {
                let w = r[i * k + c]
                total += w
                for d in 0..<dims { mean[d] += w * x[i * dims + d] }
            }
            for d in 0..<dims { mean[d] /= total }
            var covariance = [Double](repeating: 0, count: dims * dims)
            for i in 0..<n {
                let w = r[i * k + c]
                guard w > 0 else { continue }
                for p in 0..<dims {
                    let dp = x[i * dims + p] - mean[p]
                    for q in 0...p { covariance[p * dims + q] += w * dp * (x[i * dims + q] - mean[q]) }
                }
            }
            for p in 0..<dims {
                for q in 0...p { covariance[p * dims + q] /= total }
                covariance[p * dims + p] += regularization
            }
            weights[c] = total / Double(n)
            for d in 0..<dims { means[c * dims + d] = mean[d] }
            factor(covariance, dims: dims, into: &cholesky, at: c * dims * dims)
        }
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

    /// Responsibilities from the current parameters; returns the mean log-likelihood per point.
    static func eStep(_ x: [Double], n: Int, dims: Int, k: Int, means: [Double], weights: [Double], cholesky: [Double],
                      r: inout [Double]) -> Double {
        let logTwoPi = log(2 * Double.pi)
        var logDeterminant = [Double](repeating: 0, count: k)
        for c in 0..<k {
            for d in 0..<dims { logDeterminant[c] += 2 * log(cholesky[c * dims * dims + d * dims + d]) }
        }
        var total = 0.0
        var z = [Double](repeating: 0, count: dims), logp = [Double](repeating: 0, count: k)
        for i in 0..<n {
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
            let top = logp.max()!
            var sum = 0.0
            for c in 0..<k { sum += exp(logp[c] - top) }
            let norm = top + log(sum)
            for c in 0..<k { r[i * k + c] = exp(logp[c] - norm) }
            total += norm
        }
        return total / Double(n)
    }
}
