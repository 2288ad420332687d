// DEC's soft assignment, target distribution and KL loss (Xie et al. 2016, eqs. 1-5), and the deep k-means
// clustering term on embeddings. B = rows, E = embedding dims, K = clusters, N = all samples.
import Foundation
import Tensor

public enum DEC {
    /// Student-t soft assignment, alpha = 1 (DEC eq. 1): q_ij = (1 + |z_i - mu_j|^2)^-1 / sum_j' (...).
    /// Writes q (B, K) and the kernel t_ij = (1 + |z_i - mu_j|^2)^-1 (B, K).
    public static func softAssignment(z: UnsafePointer<Float>, rows: Int, dims: Int, centres: UnsafePointer<Float>, clusters: Int,
                                      q: UnsafeMutablePointer<Float>, kernel: UnsafeMutablePointer<Float>) {
        for i in 0..<rows {
            var sum: Float = 0
            for j in 0..<clusters {
                var d: Float = 0
                for e in 0..<dims { let diff = z[i * dims + e] - centres[j * dims + e]; d += diff * diff }
                let t = 1 / (1 + d)
                kernel[i * clusters + j] = t
                sum += t
            }
            for j in 0..<clusters { q[i * clusters + j] = kernel[i * clusters + j] / sum }
        }
    }

    /// The cluster frequencies f_j = sum_i q_ij over all N (DEC eq. 3).
    public static func frequencies(q: [Float], clusters: Int) -> [Double] {
        var f = [Double](repeating: 0, count: clusters)
        for (index, value) in q.enumerated() { f[index % clusters] += Double(value) }
        return f
    }

    /// Target distribution (DEC eq. 3): p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), over all N rows.
    public static func target(q: [Float], clusters: Int) -> [Float] {
        let f = frequencies(q: q, clusters: clusters)
        var p = [Float](repeating: 0, count: q.count)
        let rows = q.count / clusters
        for i in 0..<rows {
            var sum = 0.0
            for j in 0..<clusters {
                let v = Double(q[i * clusters + j]) * Double(q[i * clusters + j]) / max(f[j], 1e-12)
                p[i * clusters + j] = Float(v)
                sum += v
            }
            for j in 0..<clusters { p[i * clusters + j] = Float(Double(p[i * clusters + j]) / max(sum, 1e-30)) }
        }
        return p
    }

    /// KL(P || Q) summed over the rows (DEC eq. 2) and its gradients (DEC eq. 4-5):
    /// dL/dz_i = 2 sum_j t_ij (p_ij - q_ij)(z_i - mu_j), dL/dmu_j = -2 sum_i t_ij (p_ij - q_ij)(z_i - mu_j),
    /// each multiplied by `scale` and ACCUMULATED into dZ (B, E) and dCentres (K, E).
    public static func klLossAndGradient(z: UnsafePointer<Float>, rows: Int, dims: Int, centres: UnsafePointer<Float>, clusters: Int,
                                         p: UnsafePointer<Float>, q: UnsafePointer<Float>, kernel: UnsafePointer<Float>,
                                         scale: Float, dZ: UnsafeMutablePointer<Float>, dCentres: UnsafeMutablePointer<Float>) -> Double {
        var loss = 0.0
        for i in 0..<rows {
            for j in 0..<clusters {
                let pij = p[i * clusters + j], qij = q[i * clusters + j]
                if pij > 0 { loss += Double(pij) * (log(Double(pij)) - log(Double(max(qij, 1e-30)))) }
                let c = 2 * scale * kernel[i * clusters + j] * (pij - qij)
                for e in 0..<dims {
                    let g = c * (z[i * dims + e] - centres[j * dims + e])
                    dZ[i * dims + e] += g
                    dCentres[j * dims + e] -= g
                }
            }
        }
        return loss
    }

    /// Deep k-means term: the soft k-means loss (softmax weights, sharpness alpha) on embeddings. Accumulates
    /// scale * dL/dz into dZ (B, E) and scale * dL/dmu into dCentres (K, E); returns the summed loss.
    public static func kMeansLossAndGradient(z: UnsafePointer<Float>, rows: Int, dims: Int, centres: UnsafePointer<Float>,
                                             clusters: Int, alpha: Float, scale: Float,
                                             distances: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>,
                                             dDistances: UnsafeMutablePointer<Float>,
                                             dZ: UnsafeMutablePointer<Float>, dCentres: UnsafeMutablePointer<Float>) -> Double {
        for i in 0..<rows {
            for j in 0..<clusters {
                var d: Float = 0
                for e in 0..<dims { let diff = z[i * dims + e] - centres[j * dims + e]; d += diff * diff }
                distances[i * clusters + j] = d
            }
        }
        let loss = SoftKMeans.softmaxLoss(distances: distances, rows: rows, clusters: clusters, alpha: alpha,
                                          weights: weights, dDistances: dDistances)
        // d(d_ij)/dz_i = 2 (z_i - mu_j); d(d_ij)/dmu_j = -2 (z_i - mu_j)
        for i in 0..<rows {
            for j in 0..<clusters {
                let c = 2 * scale * dDistances[i * clusters + j]
                for e in 0..<dims {
                    let g = c * (z[i * dims + e] - centres[j * dims + e])
                    dZ[i * dims + e] += g
                    dCentres[j * dims + e] -= g
                }
            }
        }
        return loss
    }
}
