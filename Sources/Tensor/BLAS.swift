// BLAS: the matrix products of the project, through OpenBLAS's cblas_sgemm, with a naive reference beside it.
// The one Swift file that imports COpenBLAS. Row-major throughout.
internal import COpenBLAS

public enum BLAS {
    /// C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, row-major, with leading dimensions.
    @inline(__always)
    public static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The triple loop that `gemm` must agree with (tests only; slow on purpose).
    public static func gemmNaive(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                                 a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var sum: Double = 0
                for p in 0..<k {
                    let x = transposeA ? a[p * lda + i] : a[i * lda + p]
                    let y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(x) * Double(y)
                }
                let previous = beta == 0 ? 0 : beta * c[i * ldc + j]
                c[i * ldc + j] = alpha * Float(sum) + previous
            }
        }
    }

    /// Threads OpenBLAS uses for each product.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// The kernel set OpenBLAS chose for this CPU at load time ("Prescott": its generic fallback for a CPU it does
    /// not recognise).
    public static var coreName: String {
        guard let text = openblas_get_corename() else { return "unknown" }
        return String(validatingCString: text) ?? "unknown"
    }

    /// The OPENBLAS_CORETYPE to ask for when OpenBLAS fell back to its generic kernels on a CPU whose instruction
    /// flags (/proc/cpuinfo's) it could use: a newer CPU than the library knows, or a VM that hides the model (seen
    /// here: an AVX-512 Xeon run at 1,400 samples/s a pretraining step instead of 6,300). nil: keep OpenBLAS's choice.
    public static func coreTypeForGenericFallback(coreName: String, cpuFlags: Set<String>) -> String? {
        guard coreName.lowercased() == "prescott" else { return nil }
        if ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"].allSatisfy(cpuFlags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(cpuFlags.contains) { return "Haswell" }
        if cpuFlags.contains("avx") { return "Sandybridge" }
        return nil
    }

    /// OpenBLAS's own description of its build (core type, threading).
    public static var configuration: String {
        guard let text = openblas_get_config() else { return "unknown" }
        return String(validatingCString: text) ?? "unknown"
    }
}
