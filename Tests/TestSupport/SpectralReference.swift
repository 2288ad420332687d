// The plain Swift references of the spectral start's passes, the loops that CKernels' spectral.c (Kernels.spectral*)
// replaced, kept to test the kernels against bit for bit: the same operations in the same order, each pass a
// separate loop over the rows (the kernels fuse them row by row). Rows of `block` doubles; sums add into `out` over
// `rows` in order, as over one chunk.
extension Reference {
    /// Rows of y = A x = (x + W x) / 2 (row i's edges at rowStart[i] ..< rowStart[i + 1]), or with `filter` a step of
    /// its Chebyshev filter, y <- 2 (A x - centre x) / halfWidth - y.
    public static func spectralRows(x: [Double], y: inout [Double], rowStart: [Int], tails: [Int32], values: [Double],
                                    block: Int, rows: Range<Int>, filter: (centre: Double, halfWidth: Double)? = nil) {
        for i in rows {
            var sum = Array(x[(i * block)..<((i + 1) * block)])
            for e in rowStart[i]..<rowStart[i + 1] {
                for c in 0..<block { sum[c] += values[e] * x[Int(tails[e]) * block + c] }
            }
            for c in 0..<block {
                if let filter {
                    y[i * block + c] = 2 * (sum[c] * 0.5 - filter.centre * x[i * block + c]) / filter.halfWidth - y[i * block + c]
                } else {
                    y[i * block + c] = sum[c] * 0.5
                }
            }
        }
    }

    /// h (block, block) gains X^T Y over the rows (the Rayleigh-Ritz matrix, with y = A x).
    public static func spectralProjection(x: [Double], y: [Double], into h: inout [Double], block: Int, rows: Range<Int>) {
        for i in rows { for p in 0..<block { for q in 0..<block { h[p * block + q] += x[i * block + p] * y[i * block + q] } } }
    }

    /// out (block) gains the rows' x[i] v[i].
    public static func spectralDot(x: [Double], v: [Double], into out: inout [Double], block: Int, rows: Range<Int>) {
        for i in rows { for c in 0..<block { out[c] += v[i] * x[i * block + c] } }
    }

    /// The rows less t[c] trivial[i].
    public static func spectralRemove(x: inout [Double], trivial: [Double], t: [Double], block: Int, rows: Range<Int>) {
        for i in rows { for c in 0..<block { x[i * block + c] -= t[c] * trivial[i] } }
    }

    /// The rows times r^-1 (upper triangular), by forward substitution.
    public static func spectralSubstitute(x: inout [Double], r: [Double], block: Int, rows: Range<Int>) {
        for i in rows {
            for c in 0..<block {
                var v = x[i * block + c]
                for p in 0..<c { v -= x[i * block + p] * r[p * block + c] }
                x[i * block + c] = v / r[c * block + c]
            }
        }
    }

    /// gram's upper triangle (block, block) gains the rows' x[i][p] x[i][q], q >= p.
    public static func spectralGram(x: [Double], into gram: inout [Double], block: Int, rows: Range<Int>) {
        for i in rows { for p in 0..<block { for q in p..<block { gram[p * block + q] += x[i * block + p] * x[i * block + q] } } }
    }

    /// The rows of x and ax turned by `turn` (row <- row turn); the first `dims` residuals' squares added to `squares`;
    /// then ax <- (ax - centre x) / halfWidth.
    public static func spectralTurn(x: inout [Double], ax: inout [Double], turn: [Double], ritz: [Double], squares: inout [Double],
                                    block: Int, dims: Int, centre: Double, halfWidth: Double, rows: Range<Int>) {
        func rotate(_ v: inout [Double]) {
            for i in rows {
                var turned = [Double](repeating: 0, count: block)
                for p in 0..<block { for c in 0..<block { turned[c] += v[i * block + p] * turn[p * block + c] } }
                for c in 0..<block { v[i * block + c] = turned[c] }
            }
        }
        rotate(&x)
        rotate(&ax)
        for i in rows {
            for c in 0..<dims { let d = ax[i * block + c] - ritz[c] * x[i * block + c]; squares[c] += d * d }
        }
        for i in rows { for c in 0..<block { ax[i * block + c] = (ax[i * block + c] - centre * x[i * block + c]) / halfWidth } }
    }
}
