// Losses with their gradients. Each returns the SUM of per-sample losses over the rank's rows and writes
// the gradient already divided by the global batch (`scale` = 1 / B), so the allreduced gradient is the mean.
// B = rows, D = dims.
import Tensor

public enum MSE {
    /// Per-sample loss l_i = (1/D) sum_d (r_id - x_id)^2; dReconstruction = scale * 2 (r - x) / D.
    public static func lossAndGradient(reconstruction: UnsafePointer<Float>, target: UnsafePointer<Float>,
                                       dReconstruction: UnsafeMutablePointer<Float>, rows: Int, dims: Int,
                                       scale: Float) -> Double {
        var total: Double = 0
        let g = 2 * scale / Float(dims)
        for r in 0..<rows {
            var sum: Float = 0
            let base = r * dims
            for d in 0..<dims {
                let e = reconstruction[base + d] - target[base + d]
                sum += e * e
                dReconstruction[base + d] = g * e
            }
            total += Double(sum)
        }
        return total / Double(dims)
    }

    /// The loss alone (evaluation).
    public static func loss(reconstruction: UnsafePointer<Float>, target: UnsafePointer<Float>, rows: Int, dims: Int) -> Double {
        var total: Double = 0
        for r in 0..<rows {
            var sum: Float = 0
            for d in 0..<dims {
                let e = reconstruction[r * dims + d] - target[r * dims + d]
                sum += e * e
            }
            total += Double(sum)
        }
        return total / Double(dims)
    }
}
