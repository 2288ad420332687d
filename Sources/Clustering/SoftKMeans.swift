// Soft k-means losses (the report's Tasks 0 and 1) and their gradients with respect to the squared distances.
// loss_i = sum_k d_ik w_ik. Softmax weights: w_ik = softmax_k(-alpha d_ik), computed with the log-sum-exp shift
// (subtract the row's smallest distance) so no alpha overflows. Free weights: w_i, a row on the probability
// simplex, moved by a projected gradient step (InputSpace.swift says why not softmax logits).
// B = rows, K = clusters.
import Foundation
import Tensor

public enum SoftKMeans {
    /// Softmax weights. Writes w (B, K) and dLoss/dd (B, K) = w_ik (1 - alpha (d_ik - dbar_i)), dbar_i = sum_k w_ik d_ik
    /// (DESIGN.md); returns the summed loss.
    public static func softmaxLoss(distances d: UnsafePointer<Float>, rows: Int, clusters: Int, alpha: Float,
                                   weights w: UnsafeMutablePointer<Float>, dDistances g: UnsafeMutablePointer<Float>) -> Double {
        var total = 0.0
        for i in 0..<rows {
            let row = d + i * clusters, wr = w + i * clusters, gr = g + i * clusters
            softmaxRow(row, clusters: clusters, alpha: alpha, into: wr)
            var mean: Float = 0
            for k in 0..<clusters { mean += wr[k] * row[k] }
            for k in 0..<clusters { gr[k] = wr[k] * (1 - alpha * (row[k] - mean)) }
            total += Double(mean)
        }
        return total
    }

    /// The softmax weights w (B, K) of -alpha d alone (deep k-means' soft assignment).
    public static func softmaxWeights(distances d: UnsafePointer<Float>, rows: Int, clusters: Int, alpha: Float,
                                      into w: UnsafeMutablePointer<Float>) {
        for i in 0..<rows { softmaxRow(d + i * clusters, clusters: clusters, alpha: alpha, into: w + i * clusters) }
    }

    /// w_k = softmax_k(-alpha d_k), shifted by the row's smallest distance so that no alpha overflows.
    @inline(__always)
    static func softmaxRow(_ row: UnsafePointer<Float>, clusters: Int, alpha: Float, into w: UnsafeMutablePointer<Float>) {
        var smallest = row[0]
        for k in 1..<clusters { smallest = min(smallest, row[k]) }
        var sum: Float = 0
        for k in 0..<clusters {
            let e = exp(-alpha * (row[k] - smallest))   // in (0, 1]: never overflows
            w[k] = e
            sum += e
        }
        for k in 0..<clusters { w[k] /= sum }
    }

    /// Free weights: w_i on the simplex, given. loss_i = sum_k w_ik d_ik; dLoss/dd = w; dLoss/dw = d.
    public static func freeWeightLoss(distances d: UnsafePointer<Float>, weights w: UnsafePointer<Float>, rows: Int,
                                      clusters: Int, dDistances g: UnsafeMutablePointer<Float>,
                                      dWeights gw: UnsafeMutablePointer<Float>) -> Double {
        var total = 0.0
        for i in 0..<(rows * clusters) {
            g[i] = w[i]
            gw[i] = d[i]
            total += Double(w[i] * d[i])
        }
        return total
    }

    /// Euclidean projection of `v` (K) onto the probability simplex (Duchi et al. 2008), in place.
    public static func projectOntoSimplex(_ v: UnsafeMutablePointer<Float>, count k: Int) {
        var sorted = (0..<k).map { v[$0] }
        sorted.sort(by: >)
        var cumulative: Float = 0, theta: Float = 0
        for j in 0..<k {
            cumulative += sorted[j]
            let candidate = (cumulative - 1) / Float(j + 1)
            if sorted[j] - candidate > 0 { theta = candidate }
        }
        for j in 0..<k { v[j] = max(v[j] - theta, 0) }
    }

    /// dLoss/dcentres (K, D) += scale * sum_i g_ik * d(d_ik)/du_k = -2 scale (G^T X - colsum(G) u) (accumulating).
    public static func centreGradient(points: UnsafePointer<Float>, rows: Int, dims: Int, centres: UnsafePointer<Float>,
                                      clusters: Int, dDistances g: UnsafePointer<Float>, scale: Float,
                                      into dCentres: UnsafeMutablePointer<Float>) {
        BLAS.gemm(transposeA: true, transposeB: false, m: clusters, n: dims, k: rows, alpha: -2 * scale,
                  a: g, lda: clusters, b: points, ldb: dims, beta: 1, c: dCentres, ldc: dims)
        for k in 0..<clusters {
            var column: Float = 0
            for i in 0..<rows { column += g[i * clusters + k] }
            let factor = 2 * scale * column
            for d in 0..<dims { dCentres[k * dims + d] += factor * centres[k * dims + d] }
        }
    }
}
