// Kernels: the one Swift file that imports CKernels, the elementwise passes of a training step in vector C, each
// split over `parts` threads of CKernels' own pool (see Parallel.parts). Outputs first, as in the C; results do not
// depend on `parts`.
internal import CKernels

public enum Kernels {
    /// Adam over `count` elements; false when a gradient was NaN or Inf (the update still ran).
    @inline(__always)
    public static func adamUpdate(parameters: UnsafeMutablePointer<Float>, first: UnsafeMutablePointer<Float>,
                           second: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, count: Int,
                           learningRate: Float, beta1: Float, beta2: Float, correction1: Float, correction2: Float,
                           epsilon: Float, parts: Int) -> Bool {
        CKernels_adam_update_parallel(parameters, gradients, first, second, count, learningRate, beta1, beta2,
                                      correction1, correction2, epsilon, parts) != 0
    }

    /// SGD with momentum over `count` elements; false when a gradient was NaN or Inf.
    @inline(__always)
    public static func sgdUpdate(parameters: UnsafeMutablePointer<Float>, velocity: UnsafeMutablePointer<Float>,
                          gradients: UnsafePointer<Float>, count: Int, learningRate: Float, momentum: Float,
                          parts: Int) -> Bool {
        CKernels_sgd_update_parallel(parameters, gradients, velocity, count, learningRate, momentum, parts) != 0
    }

    /// output (rows, columns) += bias, then max(output, 0) with `relu`; with `rounded`, also the output rounded to
    /// bf16 there (BF16.round's rounding); split by rows.
    @inline(__always)
    public static func biasActivation(output: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, columns: Int,
                                      relu: Bool, rounded: UnsafeMutablePointer<UInt16>? = nil, parts: Int) {
        CKernels_bias_activation_parallel(output, bias, rows, columns, relu ? 1 : 0, rounded, parts)
    }

    /// With `relu`, dOutput = (output > 0 ? dOutput : 0); then dBias += the column sums of dOutput; with `rounded`,
    /// also dOutput rounded to bf16 there; split by columns.
    @inline(__always)
    public static func activationBackward(dOutput: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>,
                                          output: UnsafePointer<Float>, rows: Int, columns: Int, relu: Bool,
                                          rounded: UnsafeMutablePointer<UInt16>? = nil, parts: Int) {
        CKernels_activation_backward_parallel(dOutput, output, dBias, rows, columns, relu ? 1 : 0, rounded, parts)
    }

    @inline(__always)
    public static func zero(_ values: UnsafeMutablePointer<Float>, count: Int, parts: Int) {
        CKernels_zero_parallel(values, count, parts)
    }

    /// Augmentation's pixels: each of `rows` rows of `source` (`planes` of side x side) under its transform
    /// (`transforms`: dx, dy, cosine, sine per row), bilinear with zero fill; split by rows.
    @inline(__always)
    public static func affineBilinear(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, rows: Int, side: Int,
                                      planes: Int, transforms: UnsafePointer<Double>, parts: Int) {
        CKernels_affine_bilinear_parallel(source, target, rows, side, planes, transforms, parts)
    }

    /// y = x rounded to bf16 (to nearest, ties to even; BF16's operands), split over `parts` threads.
    @inline(__always)
    public static func roundToBF16(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<UInt16>, count: Int, parts: Int) {
        CKernels_to_bf16_parallel(x, y, count, parts)
    }

    /// One chunk of one epoch of UMAP's layout SGD (Clustering's UMAP.layout; CKernels_umap_layout_chunk): the
    /// chunk's rows of `positions` (count x dims, rows `stride` floats apart) copied into `moved` and moved there, the
    /// edges' schedules advanced. False when it could not allocate its few kilobytes of plans (the chunk is then part
    /// moved).
    public static func umapLayoutChunk(positions: UnsafePointer<Float>, moved: UnsafeMutablePointer<Float>, chunk: Range<Int>,
                                       count: Int, dims: Int, stride: Int, rowStart: UnsafePointer<Int>, tails: UnsafePointer<Int32>,
                                       perSample: UnsafePointer<Double>, nextSample: UnsafeMutablePointer<Double>,
                                       nextNegative: UnsafeMutablePointer<Double>, a: Float, b: Float, alpha: Float,
                                       crossStep: Float, epoch: Int, negatives: Double, seed: UInt64, stream: UInt64) -> Bool {
        precondition(stride >= dims, "layout rows at least dims floats apart")
        return CKernels_umap_layout_chunk(positions, moved, chunk.lowerBound, chunk.upperBound, count, dims, stride, rowStart, tails, perSample,
                                   nextSample, nextNegative, a, b, alpha, crossStep, Double(epoch), negatives, seed, stream,
                                   UInt64(epoch)) != 0
    }

    /// Rows `rows` of the spectral start's product y = A x = (x + W x) / 2, or with `filter` = (centre, halfWidth) a
    /// step of its Chebyshev filter, y <- 2 (A x - centre x) / halfWidth - y (Clustering's UMAP.spectralLayout;
    /// CKernels_spectral_rows): x and y (N, block), not overlapping, row i's edges at rowStart[i] ..< rowStart[i + 1],
    /// edge e's value at values[e - valuesFrom] (values may start at the first row's edges). Without `filter`, `h`
    /// (block, block) if given gains X^T Y over the rows. Same bits on every CPU.
    public static func spectralRows(x: UnsafePointer<Double>, y: UnsafeMutablePointer<Double>, rowStart: UnsafePointer<Int>,
                                    tails: UnsafePointer<Int32>, values: UnsafePointer<Double>, valuesFrom: Int = 0, block: Int,
                                    rows: Range<Int>, filter: (centre: Double, halfWidth: Double)? = nil,
                                    h: UnsafeMutablePointer<Double>? = nil) {
        precondition(filter == nil || h == nil, "the filter's step sums no Rayleigh-Ritz matrix")
        CKernels_spectral_rows(x, y, rowStart, tails, values, valuesFrom, block, rows.lowerBound, rows.upperBound, filter?.centre ?? 0,
                               filter?.halfWidth ?? 1, filter == nil ? 0 : 1, h)
    }

    /// out (block) gains the rows' x[i] v[i] (CKernels_spectral_dot).
    public static func spectralDot(x: UnsafePointer<Double>, v: UnsafePointer<Double>, into out: UnsafeMutablePointer<Double>,
                                   block: Int, rows: Range<Int>) {
        CKernels_spectral_dot(x, v, out, block, rows.lowerBound, rows.upperBound)
    }

    /// Each of the rows of x (N, block) in turn: less t[c] trivial[i] (with `t`), times r^-1 (with `r`, upper
    /// triangular), and its upper Gram triangle added to `gram` (CKernels_spectral_orthogonalise).
    public static func spectralOrthogonalise(x: UnsafeMutablePointer<Double>, trivial: UnsafePointer<Double>,
                                             t: UnsafePointer<Double>?, r: UnsafePointer<Double>?,
                                             gram: UnsafeMutablePointer<Double>?, block: Int, rows: Range<Int>) {
        CKernels_spectral_orthogonalise(x, trivial, t, r, gram, block, rows.lowerBound, rows.upperBound)
    }

    /// The rows of x and ax turned by `turn` (block, block), their first `dims` residuals' squares added to `squares`,
    /// and ax set to the Chebyshev filter's first step (ax - centre x) / halfWidth (CKernels_spectral_turn).
    public static func spectralTurn(x: UnsafeMutablePointer<Double>, ax: UnsafeMutablePointer<Double>, turn: UnsafePointer<Double>,
                                    ritz: UnsafePointer<Double>, squares: UnsafeMutablePointer<Double>, block: Int, dims: Int,
                                    centre: Double, halfWidth: Double, rows: Range<Int>) {
        CKernels_spectral_turn(x, ax, turn, ritz, squares, block, dims, centre, halfWidth, rows.lowerBound, rows.upperBound)
    }

    /// The squared Euclidean distance of two rows of `count` bytes, summed exactly (every body the same number);
    /// `level` picks a body for the tests (0 scalar, 1 AVX2, 2 AVX-512; the widest the CPU has at most).
    @inline(__always)
    public static func squaredDistance(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, count: Int, level: Int = 2) -> UInt64 {
        CKernels_squared_distance_u8_at(a, b, count, Int32(level))
    }

    /// The widest body `squaredDistance` of bytes has on this CPU (0, 1 or 2).
    public static var byteDistanceLevel: Int { Int(CKernels_squared_distance_u8_level()) }

    /// The squared Euclidean distance of two rows of `count` floats: 32 partial sums added by a fixed tree, then the
    /// rest in order (fewer than 32: one sum in order); the same bits from every body (`level` as for bytes).
    @inline(__always)
    public static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int, level: Int = 2) -> Float {
        CKernels_squared_distance_f32_at(a, b, count, Int32(level))
    }

    /// start + normal . row, summed as `squaredDistance` of floats sums; of a Float row or a row of bytes.
    @inline(__always)
    public static func side(_ normal: UnsafePointer<Float>, _ row: UnsafePointer<Float>, count: Int, start: Float,
                            level: Int = 2) -> Float {
        CKernels_side_f32_at(normal, row, count, start, Int32(level))
    }

    @inline(__always)
    public static func side(_ normal: UnsafePointer<Float>, _ row: UnsafePointer<UInt8>, count: Int, start: Float,
                            level: Int = 2) -> Float {
        CKernels_side_u8_at(normal, row, count, start, Int32(level))
    }

    /// The widest body those of float rows have on this CPU (0, 1 or 2).
    public static var floatRowsLevel: Int { Int(CKernels_float_rows_level()) }

    /// out[i] = `squaredDistance` of point u and point rows[i], for i < count: point r is row r of x (rows of `dims`),
    /// or row point[r] when `point` is given. The rows ahead are fetched from memory while the current one is summed.
    public static func squaredDistances(_ out: UnsafeMutablePointer<Float>, rows x: UnsafePointer<Float>, dims: Int, from u: Int,
                                        to rows: UnsafePointer<Int32>, count: Int, through point: UnsafePointer<Int>? = nil,
                                        level: Int = 2) {
        CKernels_squared_distances_f32(out, x, dims, u, rows, count, point, Int32(level))
    }

    /// The same of rows of bytes: each the exact integer sum, rounded to Float once.
    public static func squaredDistances(_ out: UnsafeMutablePointer<Float>, rows x: UnsafePointer<UInt8>, dims: Int, from u: Int,
                                        to rows: UnsafePointer<Int32>, count: Int, through point: UnsafePointer<Int>? = nil,
                                        level: Int = 2) {
        CKernels_squared_distances_u8(out, x, dims, u, rows, count, point, Int32(level))
    }

    /// True when the AVX2 bodies run (else the scalar ones, same bits).
    public static var vectorised: Bool { CKernels_vectorised() != 0 }
}
