// BF16: products with bfloat16 operands and float32 accumulation, through oneDNN's GEMM (Debian's libdnnl-dev), for
// the CPUs that multiply bf16 natively (AVX-512 BF16, AMX), split over the BLAS threads by CBF16. The one Swift file
// that imports CBF16. Row-major, as BLAS.
internal import CBF16

/// Which arithmetic a model's products use. Weights, optimizer state, the elementwise passes and the gradient sums
/// stay float32 in both; `bf16` rounds the two operands of each product to bfloat16 (8 significant bits) and
/// accumulates in float32, as PyTorch's CPU autocast does.
public enum Precision: String, Sendable, CaseIterable, Codable {
    case float32
    case bf16
}

public enum BF16 {
    // oneDNN's dnnl_cpu_isa_t bits: AVX-512 core, then with BF16 instructions, then with AMX.
    static let avx512 = 0x27, avx512BF16 = 0xE7, amx = 0x3E7

    /// What oneDNN's products run on here, in words (DNNL_MAX_CPU_ISA can lower it).
    public static var instructionSet: String {
        let isa = Int(CBF16_isa())
        if isa & amx == amx { return "AMX" }
        if isa & avx512BF16 == avx512BF16 { return hasFullRateDot ? "AVX-512 BF16 (AMD)" : "AVX-512 BF16" }
        if isa & avx512 == avx512 { return "AVX-512 without BF16 (bf16 emulated)" }
        return "no AVX-512"
    }

    /// True where the CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX).
    public static var isNative: Bool { Int(CBF16_isa()) & avx512BF16 == avx512BF16 }

    /// True where oneDNN multiplies bf16 on AMX tiles (2.1-2.3x a float32 step on a Xeon with AMX).
    public static var hasMatrixUnits: Bool { Int(CBF16_isa()) & amx == amx }

    /// True where AVX-512 BF16's dot product does twice a float32 FMA's multiplications a cycle: AMD's cores (Zen 4:
    /// oneDNN's bf16 GEMM 1.8-2.0x OpenBLAS's SGEMM, a step 1.7-1.8x). On Intel's cores without AMX it does no more
    /// (a Xeon with AMX hidden: 0.47-0.75x).
    public static var hasFullRateDot: Bool { isNative && !hasMatrixUnits && CBF16_vendor_is_amd() != 0 }

    /// True where oneDNN has a bf16 GEMM at all (AVX-512, natively or emulated).
    public static var isAvailable: Bool { Int(CBF16_isa()) & avx512 == avx512 }

    /// C (M, N) = alpha op(A) op(B) + beta C with A and B in bf16, C in float32, split over `parts` threads (the
    /// BLAS threads by default); C does not depend on `parts`. Stops the process only where oneDNN has no kernel for
    /// this CPU, which `isAvailable` tells beforehand.
    @inline(__always)
    public static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<UInt16>, lda: Int, b: UnsafePointer<UInt16>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, parts: Int = BLAS.threads) {
        guard m > 0, n > 0 else { return }
        let status = CBF16_gemm(transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, parts)
        precondition(status == 0, "oneDNN's bf16 GEMM failed (status \(status)); BF16.isAvailable was not checked")
    }

    /// The float32 value of a bf16 (exact: its upper 16 bits).
    @inline(__always)
    public static func value(_ half: UInt16) -> Float { Float(bitPattern: UInt32(half) << 16) }
}
