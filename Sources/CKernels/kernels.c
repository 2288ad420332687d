// See CKernels.h. Each function: an AVX2 body for 8 lanes at a time, then the same arithmetic in scalar form for
// the tail (and for CPUs without AVX2). Contraction into FMA is off so that both forms round identically.
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <immintrin.h>

static inline int finite_bits(float x) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    return (bits & 0x7F800000u) != 0x7F800000u;
}

static int adam_scalar(float *p, const float *g, float *m, float *v, size_t from, size_t n,
                       float lr, float b1, float b2, float c1, float c2, float eps) {
    int finite = 1;
    for (size_t i = from; i < n; i++) {
        float gi = g[i];
        finite &= finite_bits(gi);
        float mi = b1 * m[i] + (1 - b1) * gi;
        float vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - lr * (mi * c1) / (sqrtf(vi * c2) + eps);
    }
    return finite;
}

static int sgd_scalar(float *p, const float *g, float *v, size_t from, size_t n, float lr, float mu) {
    int finite = 1;
    for (size_t i = from; i < n; i++) {
        finite &= finite_bits(g[i]);
        float vi = mu * v[i] + g[i];
        v[i] = vi;
        p[i] = p[i] - lr * vi;
    }
    return finite;
}

#if defined(__x86_64__)
#define DC_AVX2 __attribute__((target("avx2")))

DC_AVX2 static int adam_avx2(float *p, const float *g, float *m, float *v, size_t n,
                             float lr, float b1, float b2, float c1, float c2, float eps) {
    const __m256 B1 = _mm256_set1_ps(b1), B2 = _mm256_set1_ps(b2), A1 = _mm256_set1_ps(1 - b1), A2 = _mm256_set1_ps(1 - b2);
    const __m256 C1 = _mm256_set1_ps(c1), C2 = _mm256_set1_ps(c2), E = _mm256_set1_ps(eps), LR = _mm256_set1_ps(lr);
    const __m256i exponent = _mm256_set1_epi32(0x7F800000);
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(gv), exponent), exponent));
        __m256 mv = _mm256_add_ps(_mm256_mul_ps(B1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(A1, gv));
        __m256 vv = _mm256_add_ps(_mm256_mul_ps(B2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(A2, gv), gv));
        _mm256_storeu_ps(m + i, mv);
        _mm256_storeu_ps(v + i, vv);
        __m256 step = _mm256_div_ps(_mm256_mul_ps(LR, _mm256_mul_ps(mv, C1)),
                                    _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vv, C2)), E));
        _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), step));
    }
    int finite = _mm256_testz_si256(bad, bad);
    return adam_scalar(p, g, m, v, i, n, lr, b1, b2, c1, c2, eps) & finite;
}

DC_AVX2 static int sgd_avx2(float *p, const float *g, float *v, size_t n, float lr, float mu) {
    const __m256 MU = _mm256_set1_ps(mu), LR = _mm256_set1_ps(lr);
    const __m256i exponent = _mm256_set1_epi32(0x7F800000);
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(gv), exponent), exponent));
        __m256 vv = _mm256_add_ps(_mm256_mul_ps(MU, _mm256_loadu_ps(v + i)), gv);
        _mm256_storeu_ps(v + i, vv);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_mul_ps(LR, vv)));
    }
    int finite = _mm256_testz_si256(bad, bad);
    return sgd_scalar(p, g, v, i, n, lr, mu) & finite;
}

static int has_avx2(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    return cached;
}
#else
static int has_avx2(void) { return 0; }
#endif

int dc_adam_update(float *p, const float *g, float *m, float *v, size_t n,
                   float lr, float b1, float b2, float c1, float c2, float eps) {
#if defined(__x86_64__)
    if (has_avx2()) return adam_avx2(p, g, m, v, n, lr, b1, b2, c1, c2, eps);
#endif
    return adam_scalar(p, g, m, v, 0, n, lr, b1, b2, c1, c2, eps);
}

int dc_sgd_update(float *p, const float *g, float *v, size_t n, float lr, float mu) {
#if defined(__x86_64__)
    if (has_avx2()) return sgd_avx2(p, g, v, n, lr, mu);
#endif
    return sgd_scalar(p, g, v, 0, n, lr, mu);
}

static inline __attribute__((always_inline))
void bias_activation(float *restrict y, const float *restrict b, size_t rows, size_t cols, size_t ld, int relu) {
    for (size_t r = 0; r < rows; r++) {
        float *restrict row = y + r * ld;
        if (relu) {
            for (size_t j = 0; j < cols; j++) { float x = row[j] + b[j]; row[j] = x > 0 ? x : 0; }
        } else {
            for (size_t j = 0; j < cols; j++) row[j] += b[j];
        }
    }
}

static inline __attribute__((always_inline))
void activation_backward(float *restrict dy, const float *restrict y, float *restrict db, size_t rows, size_t cols,
                         size_t ld, int relu) {
    for (size_t r = 0; r < rows; r++) {
        float *restrict d = dy + r * ld;
        const float *restrict out = y + r * ld;
        if (relu) {
            for (size_t j = 0; j < cols; j++) { float g = out[j] > 0 ? d[j] : 0; d[j] = g; db[j] += g; }
        } else {
            for (size_t j = 0; j < cols; j++) db[j] += d[j];
        }
    }
}

#if defined(__x86_64__)
DC_AVX2 static void bias_activation_avx2(float *y, const float *b, size_t rows, size_t cols, size_t ld, int relu) {
    bias_activation(y, b, rows, cols, ld, relu);
}
DC_AVX2 static void activation_backward_avx2(float *dy, const float *y, float *db, size_t rows, size_t cols, size_t ld, int relu) {
    activation_backward(dy, y, db, rows, cols, ld, relu);
}
#endif

void dc_bias_activation(float *y, const float *b, size_t rows, size_t cols, size_t ld, int relu) {
#if defined(__x86_64__)
    if (has_avx2()) { bias_activation_avx2(y, b, rows, cols, ld, relu); return; }
#endif
    bias_activation(y, b, rows, cols, ld, relu);
}

void dc_activation_backward(float *dy, const float *y, float *db, size_t rows, size_t cols, size_t ld, int relu) {
#if defined(__x86_64__)
    if (has_avx2()) { activation_backward_avx2(dy, y, db, rows, cols, ld, relu); return; }
#endif
    activation_backward(dy, y, db, rows, cols, ld, relu);
}

int dc_kernels_vectorised(void) { return has_avx2(); }
