// See CKernels.h. Each function: an AVX2 body for 8 lanes at a time, then the same arithmetic in scalar form for
// the tail (and for CPUs without AVX2). Contraction into FMA is off so that both forms round identically.
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
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

/// `bad` with the lanes of g whose exponent bits are all set (NaN or Inf) marked.
DC_AVX2 static inline __m256i mark_nonfinite(__m256i bad, __m256 g) {
    const __m256i exponent = _mm256_set1_epi32(0x7F800000);
    return _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(g), exponent), exponent));
}

DC_AVX2 static int adam_avx2(float *p, const float *g, float *m, float *v, size_t n,
                             float lr, float b1, float b2, float c1, float c2, float eps) {
    const __m256 B1 = _mm256_set1_ps(b1), B2 = _mm256_set1_ps(b2), A1 = _mm256_set1_ps(1 - b1), A2 = _mm256_set1_ps(1 - b2);
    const __m256 C1 = _mm256_set1_ps(c1), C2 = _mm256_set1_ps(c2), E = _mm256_set1_ps(eps), LR = _mm256_set1_ps(lr);
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        bad = mark_nonfinite(bad, gv);
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
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        bad = mark_nonfinite(bad, gv);
        __m256 vv = _mm256_add_ps(_mm256_mul_ps(MU, _mm256_loadu_ps(v + i)), gv);
        _mm256_storeu_ps(v + i, vv);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_mul_ps(LR, vv)));
    }
    int finite = _mm256_testz_si256(bad, bad);
    return sgd_scalar(p, g, v, i, n, lr, mu) & finite;
}

static int has_avx2(void) { return __builtin_cpu_supports("avx2") ? 1 : 0; }
#else
static int has_avx2(void) { return 0; }
#endif

// The optimiser updates run with subnormals read as 0 and flushed to 0 (MXCSR's DAZ and FTZ, on this thread for
// the call). A weight whose gradient is always 0 (a pixel that is 0 in every image, as MNIST's corners) has Adam
// moments that decay geometrically: the second moment, by 0.999 a step, spends thousands of steps in the subnormal
// range, where every operation on it takes a microcode assist. On full MNIST the Adam update took 76% of a
// pretraining step that way (5,700 samples/s on 2 ranks, where the first epochs ran at 25,000). Both the AVX2 and the
// scalar bodies obey the flags, so they still agree bit for bit.
#if defined(__x86_64__)
static inline unsigned flush_subnormals(void) {
    unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040);   // FTZ (bit 15), DAZ (bit 6)
    return saved;
}
static inline void restore_subnormals(unsigned saved) { _mm_setcsr(saved); }
#else
static inline unsigned flush_subnormals(void) { return 0; }
static inline void restore_subnormals(unsigned saved) { (void)saved; }
#endif

int CKernels_adam_update(float *p, const float *g, float *m, float *v, size_t n,
                   float lr, float b1, float b2, float c1, float c2, float eps) {
    unsigned saved = flush_subnormals();
    int finite;
#if defined(__x86_64__)
    if (has_avx2()) finite = adam_avx2(p, g, m, v, n, lr, b1, b2, c1, c2, eps);
    else
#endif
    finite = adam_scalar(p, g, m, v, 0, n, lr, b1, b2, c1, c2, eps);
    restore_subnormals(saved);
    return finite;
}

int CKernels_sgd_update(float *p, const float *g, float *v, size_t n, float lr, float mu) {
    unsigned saved = flush_subnormals();
    int finite;
#if defined(__x86_64__)
    if (has_avx2()) finite = sgd_avx2(p, g, v, n, lr, mu);
    else
#endif
    finite = sgd_scalar(p, g, v, 0, n, lr, mu);
    restore_subnormals(saved);
    return finite;
}

/// x rounded to bfloat16 (its upper 16 bits), to nearest with ties to even: a NaN stays a (quiet) NaN, a finite value
/// past the largest bf16 becomes Inf, subnormals are rounded (AVX-512 BF16's vcvtneps2bf16 flushes them to 0; no
/// activation, weight or gradient of a step is that small). Branch-free so that the loop vectorises.
static inline __attribute__((always_inline)) uint16_t bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
    uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)(nan ? ((u >> 16) | 0x40u) : rounded);
}

static inline __attribute__((always_inline)) void to_bf16(const float *restrict x, uint16_t *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = bf16_round(x[i]);
}

static inline __attribute__((always_inline))
void bias_activation(float *restrict y, const float *restrict b, size_t rows, size_t cols, size_t ld, int relu,
                     uint16_t *restrict h) {
    for (size_t r = 0; r < rows; r++) {
        float *restrict row = y + r * ld;
        if (relu) {
            for (size_t j = 0; j < cols; j++) { float x = row[j] + b[j]; row[j] = x > 0 ? x : 0; }
        } else {
            for (size_t j = 0; j < cols; j++) row[j] += b[j];
        }
        if (h) to_bf16(row, h + r * ld, cols);   // the row is still in L1
    }
}

static inline __attribute__((always_inline))
void activation_backward(float *restrict dy, const float *restrict y, float *restrict db, size_t rows, size_t cols,
                         size_t ld, int relu, uint16_t *restrict dh) {
    for (size_t r = 0; r < rows; r++) {
        float *restrict d = dy + r * ld;
        const float *restrict out = y + r * ld;
        if (relu) {
            for (size_t j = 0; j < cols; j++) { float g = out[j] > 0 ? d[j] : 0; d[j] = g; db[j] += g; }
        } else {
            for (size_t j = 0; j < cols; j++) db[j] += d[j];
        }
        if (dh) to_bf16(d, dh + r * ld, cols);
    }
}

#if defined(__x86_64__)
DC_AVX2 static void bias_activation_avx2(float *y, const float *b, size_t rows, size_t cols, size_t ld, int relu, uint16_t *h) {
    bias_activation(y, b, rows, cols, ld, relu, h);
}
DC_AVX2 static void activation_backward_avx2(float *dy, const float *y, float *db, size_t rows, size_t cols, size_t ld, int relu,
                                             uint16_t *dh) {
    activation_backward(dy, y, db, rows, cols, ld, relu, dh);
}
#endif

void CKernels_bias_activation(float *y, const float *b, size_t rows, size_t cols, size_t ld, int relu, uint16_t *h) {
#if defined(__x86_64__)
    if (has_avx2()) { bias_activation_avx2(y, b, rows, cols, ld, relu, h); return; }
#endif
    bias_activation(y, b, rows, cols, ld, relu, h);
}

void CKernels_activation_backward(float *dy, const float *y, float *db, size_t rows, size_t cols, size_t ld, int relu,
                                  uint16_t *dh) {
#if defined(__x86_64__)
    if (has_avx2()) { activation_backward_avx2(dy, y, db, rows, cols, ld, relu, dh); return; }
#endif
    activation_backward(dy, y, db, rows, cols, ld, relu, dh);
}

// MARK: - The thread pool of CKernels_parallel

#define POOL_MAX 256
static struct {
    pthread_mutex_t lock;
    pthread_cond_t start, finished;
    int threads;                       // workers started (they run parts 1 ... threads)
    unsigned long generation;          // bumped for every CKernels_parallel call
    long parts;                        // of the current call
    void (*task)(void *, long);
    void *context;
    long remaining;                    // workers still busy with the current call
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER, .start = PTHREAD_COND_INITIALIZER, .finished = PTHREAD_COND_INITIALIZER };
static atomic_int poolBusy;

static void *pool_worker(void *argument) {
    long part = (long)argument;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.start, &pool.lock);
        seen = pool.generation;
        if (part >= pool.parts) continue;  // not needed this time
        void (*task)(void *, long) = pool.task;
        void *context = pool.context;
        pthread_mutex_unlock(&pool.lock);
        task(context, part);
        pthread_mutex_lock(&pool.lock);
        if (--pool.remaining == 0) pthread_cond_signal(&pool.finished);
    }
    return NULL;
}

void CKernels_parallel(long parts, void (*task)(void *context, long part), void *context) {
    if (parts <= 1) { task(context, 0); return; }
    if (atomic_exchange(&poolBusy, 1)) {  // a call from inside a task, or from a second thread: do it here
        for (long part = 0; part < parts; part++) task(context, part);
        return;
    }
    long pooled = parts > POOL_MAX ? POOL_MAX : parts;
    pthread_mutex_lock(&pool.lock);
    while (pool.threads < pooled - 1) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, pool_worker, (void *)(long)(pool.threads + 1)) != 0) break;
        pthread_detach(thread);
        pool.threads += 1;
    }
    long helpers = pooled - 1 < pool.threads ? pooled - 1 : pool.threads;
    pool.parts = helpers + 1;
    pool.task = task;
    pool.context = context;
    pool.remaining = helpers;
    pool.generation += 1;
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.lock);
    task(context, 0);
    for (long part = helpers + 1; part < parts; part++) task(context, part);  // parts no thread could take
    pthread_mutex_lock(&pool.lock);
    while (pool.remaining > 0) pthread_cond_wait(&pool.finished, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    atomic_store(&poolBusy, 0);
}

// MARK: - Split over the pool

typedef struct {
    float *p, *v, *m, *y, *dy, *db;
    uint16_t *h;
    const float *g, *b, *yc;
    size_t n, rows, cols;
    float lr, b1, b2, c1, c2, eps, mu;
    int relu;
    long parts;
    atomic_int bad;
} Job;

static void flat_piece(const Job *job, long part, size_t *lower, size_t *upper) {
    *lower = part == 0 ? 0 : (job->n * (size_t)part / (size_t)job->parts) & ~(size_t)15;
    *upper = part == job->parts - 1 ? job->n : (job->n * (size_t)(part + 1) / (size_t)job->parts) & ~(size_t)15;
}

static void adam_piece(void *context, long part) {
    Job *job = context;
    size_t i, end;
    flat_piece(job, part, &i, &end);
    if (!CKernels_adam_update(job->p + i, job->g + i, job->m + i, job->v + i, end - i, job->lr, job->b1, job->b2, job->c1, job->c2, job->eps))
        atomic_store(&job->bad, 1);
}

static void sgd_piece(void *context, long part) {
    Job *job = context;
    size_t i, end;
    flat_piece(job, part, &i, &end);
    if (!CKernels_sgd_update(job->p + i, job->g + i, job->v + i, end - i, job->lr, job->mu)) atomic_store(&job->bad, 1);
}

static void zero_piece(void *context, long part) {
    Job *job = context;
    size_t i, end;
    flat_piece(job, part, &i, &end);
    memset(job->p + i, 0, (end - i) * sizeof(float));
}

static void forward_piece(void *context, long part) {
    Job *job = context;
    size_t lower = job->rows * (size_t)part / (size_t)job->parts, upper = job->rows * (size_t)(part + 1) / (size_t)job->parts;
    CKernels_bias_activation(job->y + lower * job->cols, job->b, upper - lower, job->cols, job->cols, job->relu,
                             job->h ? job->h + lower * job->cols : NULL);
}

static void backward_piece(void *context, long part) {
    Job *job = context;
    size_t lower = job->cols * (size_t)part / (size_t)job->parts, upper = job->cols * (size_t)(part + 1) / (size_t)job->parts;
    CKernels_activation_backward(job->dy + lower, job->yc + lower, job->db + lower, job->rows, upper - lower, job->cols, job->relu,
                                 job->h ? job->h + lower : NULL);
}

int CKernels_adam_update_parallel(float *p, const float *g, float *m, float *v, size_t n,
                            float lr, float b1, float b2, float c1, float c2, float eps, long parts) {
    Job job = { .p = p, .g = g, .m = m, .v = v, .n = n, .lr = lr, .b1 = b1, .b2 = b2, .c1 = c1, .c2 = c2, .eps = eps, .parts = parts };
    CKernels_parallel(parts, adam_piece, &job);
    return !atomic_load(&job.bad);
}

int CKernels_sgd_update_parallel(float *p, const float *g, float *v, size_t n, float lr, float mu, long parts) {
    Job job = { .p = p, .g = g, .v = v, .n = n, .lr = lr, .mu = mu, .parts = parts };
    CKernels_parallel(parts, sgd_piece, &job);
    return !atomic_load(&job.bad);
}

void CKernels_bias_activation_parallel(float *y, const float *b, size_t rows, size_t cols, int relu, uint16_t *h, long parts) {
    Job job = { .y = y, .b = b, .rows = rows, .cols = cols, .relu = relu, .h = h, .parts = parts };
    CKernels_parallel(parts, forward_piece, &job);
}

void CKernels_activation_backward_parallel(float *dy, const float *y, float *db, size_t rows, size_t cols, int relu,
                                           uint16_t *dh, long parts) {
    Job job = { .dy = dy, .yc = y, .db = db, .rows = rows, .cols = cols, .relu = relu, .h = dh, .parts = parts };
    CKernels_parallel(parts, backward_piece, &job);
}

void CKernels_zero_parallel(float *x, size_t n, long parts) {
    Job job = { .p = x, .n = n, .parts = parts };
    CKernels_parallel(parts, zero_piece, &job);
}

// MARK: - bfloat16

#if defined(__x86_64__)
DC_AVX2 static void to_bf16_avx2(const float *x, uint16_t *y, size_t n) { to_bf16(x, y, n); }
#endif

void CKernels_to_bf16(const float *x, uint16_t *y, size_t n) {
#if defined(__x86_64__)
    if (has_avx2()) { to_bf16_avx2(x, y, n); return; }
#endif
    to_bf16(x, y, n);
}

typedef struct { const float *x; uint16_t *y; size_t n; long parts; } ConversionJob;

static void conversion_piece(void *context, long part) {
    const ConversionJob *job = context;
    size_t lower = part == 0 ? 0 : (job->n * (size_t)part / (size_t)job->parts) & ~(size_t)15;
    size_t upper = part == job->parts - 1 ? job->n : (job->n * (size_t)(part + 1) / (size_t)job->parts) & ~(size_t)15;
    if (upper > lower) CKernels_to_bf16(job->x + lower, job->y + lower, upper - lower);
}

void CKernels_to_bf16_parallel(const float *x, uint16_t *y, size_t n, long parts) {
    ConversionJob job = { .x = x, .y = y, .n = n, .parts = parts };
    CKernels_parallel(parts, conversion_piece, &job);
}

// MARK: - Augmentation

typedef struct {
    const float *clean;
    float *out;
    const double *params;
    size_t rows, side, planes;
    long parts;
} AffineJob;

// One plane; the same operations in the same order as Augmentation.transform in Swift (contraction is off above).
// Compiled twice: for AVX2 CPUs (floor becomes one instruction instead of a libm call) and for any x86-64; floor is
// exact either way, so both give the same bits.
#define AFFINE_PLANE(NAME, ATTRIBUTES) \
ATTRIBUTES static void NAME(const float *source, float *target, long side, double dx, double dy, double cosine, \
                            double sine) { \
    double c = (double)(side - 1) / 2; \
    for (long y = 0; y < side; y++) { \
        double v = (double)y - dy - c, sv = sine * v, cv = cosine * v; \
        for (long x = 0; x < side; x++) { \
            double u = (double)x - dx - c; \
            double sx = cosine * u + sv + c, sy = -sine * u + cv + c; \
            double fx0 = __builtin_floor(sx), fy0 = __builtin_floor(sy); \
            long x0 = (long)fx0, y0 = (long)fy0; \
            float fx = (float)(sx - fx0), fy = (float)(sy - fy0); \
            float p00 = 0, p10 = 0, p01 = 0, p11 = 0; \
            int xin = x0 >= 0 && x0 < side, x1in = x0 + 1 >= 0 && x0 + 1 < side; \
            if (y0 >= 0 && y0 < side) { \
                if (xin) p00 = source[y0 * side + x0]; \
                if (x1in) p10 = source[y0 * side + x0 + 1]; \
            } \
            if (y0 + 1 >= 0 && y0 + 1 < side) { \
                if (xin) p01 = source[(y0 + 1) * side + x0]; \
                if (x1in) p11 = source[(y0 + 1) * side + x0 + 1]; \
            } \
            float top = p00 * (1 - fx) + p10 * fx; \
            float bottom = p01 * (1 - fx) + p11 * fx; \
            target[y * side + x] = fy == 0 ? top : top * (1 - fy) + bottom * fy; \
        } \
    } \
}

AFFINE_PLANE(affine_plane_generic, )
#if defined(__x86_64__)
AFFINE_PLANE(affine_plane_avx2, DC_AVX2)
#endif

static void affine_plane(const float *source, float *target, long side, double dx, double dy, double cosine, double sine) {
#if defined(__x86_64__)
    if (has_avx2()) { affine_plane_avx2(source, target, side, dx, dy, cosine, sine); return; }
#endif
    affine_plane_generic(source, target, side, dx, dy, cosine, sine);
}

static void affine_piece(void *context, long part) {
    AffineJob *job = context;
    size_t lower = job->rows * (size_t)part / (size_t)job->parts, upper = job->rows * (size_t)(part + 1) / (size_t)job->parts;
    size_t plane = job->side * job->side, width = plane * job->planes;
    for (size_t r = lower; r < upper; r++) {
        const double *t = job->params + 4 * r;
        for (size_t p = 0; p < job->planes; p++)
            affine_plane(job->clean + r * width + p * plane, job->out + r * width + p * plane, (long)job->side, t[0], t[1], t[2], t[3]);
    }
}

void CKernels_affine_bilinear_parallel(const float *clean, float *out, size_t rows, size_t side, size_t planes,
                                       const double *params, long parts) {
    if (parts < 1) parts = 1;
    AffineJob job = { .clean = clean, .out = out, .params = params, .rows = rows, .side = side, .planes = planes, .parts = parts };
    CKernels_parallel(parts, affine_piece, &job);
}

int CKernels_vectorised(void) { return has_avx2(); }
