// See CBF16.h.
#include "CBF16.h"
#include "CKernels.h"
#include <oneapi/dnnl/dnnl.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <stdatomic.h>
#include <string.h>

// Exported by libdnnl (2.x) with C linkage beside dnnl_sgemm (oneDNN, the library of PyTorch's bf16 CPU matmuls:
// AMX tiles, AVX-512 BF16 dot products, or AVX-512 emulation), but declared in oneDNN's source tree only, hence here.
// Measured against its matmul primitive on the model's shapes (bf16 in, float32 out, 1 and 2 threads): as fast or
// faster, with no primitive to create and cache per shape.
dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K, float alpha,
                                    const uint16_t *A, dnnl_dim_t lda, const uint16_t *B, dnnl_dim_t ldb, float beta,
                                    float *C, dnnl_dim_t ldc);
// oneDNN runs a product on omp_get_max_threads() OpenMP threads of the calling thread: one here, the pool splits.
void omp_set_num_threads(int count);

typedef struct {
    int transa, transb, byColumns;
    long m, n, k, lda, ldb, ldc, piece;
    float alpha, beta;
    const uint16_t *a, *b;
    float *c;
    atomic_int status;
} Product;

static void product_piece(void *context, long part) {
    Product *p = context;
    long total = p->byColumns ? p->n : p->m;
    long lower = part * p->piece, upper = lower + p->piece < total ? lower + p->piece : total;
    if (lower >= upper) return;
    omp_set_num_threads(1);
    const uint16_t *a = p->a, *b = p->b;
    float *c;
    long m = p->m, n = p->n;
    if (p->byColumns) {
        b += p->transb ? lower * p->ldb : lower;     // columns lower..<upper of op(B)
        c = p->c + lower;
        n = upper - lower;
    } else {
        a += p->transa ? lower : lower * p->lda;     // rows lower..<upper of op(A)
        c = p->c + lower * p->ldc;
        m = upper - lower;
    }
    dnnl_status_t status = dnnl_gemm_bf16bf16f32(p->transa ? 'T' : 'N', p->transb ? 'T' : 'N', m, n, p->k, p->alpha,
                                                 a, p->lda, b, p->ldb, p->beta, c, p->ldc);
    if (status != dnnl_success) atomic_store(&p->status, (int)status);   // any failing piece's status will do
}

int CBF16_gemm(int transa, int transb, long m, long n, long k, float alpha, const uint16_t *a, long lda,
               const uint16_t *b, long ldb, float beta, float *c, long ldc, long parts) {
    Product p = { .transa = transa, .transb = transb, .byColumns = n >= m, .m = m, .n = n, .k = k, .lda = lda,
                  .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta, .a = a, .b = b, .c = c };
    atomic_init(&p.status, 0);
    long total = p.byColumns ? n : m;
    long most = total / 16;                     // pieces of at least 16
    if (parts > most) parts = most;
    if (parts < 1) parts = 1;
    long piece = (total + parts - 1) / parts;
    p.piece = parts == 1 ? total : (piece + 15) / 16 * 16;
    if (total % p.piece == 1) p.piece = total;  // a last piece one wide would take oneDNN's other (GEMV) kernel
    parts = (total + p.piece - 1) / p.piece;
    CKernels_parallel(parts, product_piece, &p);
    return atomic_load(&p.status);
}

int CBF16_isa(void) { return (int)dnnl_get_effective_cpu_isa(); }

int CBF16_vendor_is_amd(void) {
#if defined(__x86_64__)
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return 0;
    char vendor[12];
    memcpy(vendor, &ebx, 4);
    memcpy(vendor + 4, &edx, 4);
    memcpy(vendor + 8, &ecx, 4);
    return memcmp(vendor, "AuthenticAMD", 12) == 0;
#else
    return 0;
#endif
}
