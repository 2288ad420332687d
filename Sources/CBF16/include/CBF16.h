// CBF16: oneDNN's bf16 GEMM split over CKernels' thread pool, one OpenMP thread per piece; the CPU's maker.
#ifndef CBF16_H
#define CBF16_H
#include <stdint.h>

/// C (M, N) = alpha op(A) op(B) + beta C, row-major, A and B bfloat16, C float32 (oneDNN's dnnl_gemm_bf16bf16f32).
/// The larger of M and N is cut into at most `parts` pieces that start on multiples of 16 (the last may be narrower,
/// never one wide), each a product of its own on one thread of CKernels' pool, each run with one OpenMP thread (the
/// calling thread keeps that setting). Measured on oneDNN 2.6 (AMX, AVX-512 BF16 and emulated kernels; the model's
/// shapes and odd ones, PrecisionTests): every element of C gets the same bits whatever such a cut, so C does not
/// depend on `parts`; a piece one wide goes to oneDNN's GEMV kernel, which rounds otherwise, hence never one wide.
/// Returns 0, or oneDNN's status where it has no kernel for this CPU.
int CBF16_gemm(int transa, int transb, long m, long n, long k, float alpha, const uint16_t *a, long lda,
               const uint16_t *b, long ldb, float beta, float *c, long ldc, long parts);

/// oneDNN's instruction set on this CPU (dnnl_cpu_isa_t: 0xe7 AVX-512 BF16, 0x3e7 AMX, 0x27 AVX-512).
int CBF16_isa(void);

/// 1 where the CPU is AMD's (CPUID's vendor "AuthenticAMD"): on Zen 4 and later a bf16 dot product
/// (VDPBF16PS) does twice the multiplications of a float32 FMA a cycle, on Intel's cores without AMX no more.
int CBF16_vendor_is_amd(void);
#endif
