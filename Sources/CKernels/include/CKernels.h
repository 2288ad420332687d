// CKernels: the elementwise passes of a step, in C so that they vectorise (Swift lowers a SIMD square root to a
// libm call per lane, and cannot prove that a layer's output and its bias gradient do not alias). AVX2 when the CPU has it, plain C
// otherwise; both give the same bits (no fused multiply-add, correctly rounded sqrt and division).
#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Adam over n elements: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m c1) / (sqrt(v c2) + eps).
/// Returns 0 when any g is NaN or Inf (the update still runs), 1 otherwise.
int CKernels_adam_update(float *p, const float *g, float *m, float *v, size_t n,
                   float lr, float b1, float b2, float c1, float c2, float eps);

/// SGD with momentum (PyTorch's form) over n elements: v = mu v + g; p -= lr v. Returns 0 when any g is not finite.
int CKernels_sgd_update(float *p, const float *g, float *v, size_t n, float lr, float mu);

/// A dense layer's forward epilogue on rows x cols (row stride ld): y = y + b, then max(y, 0) when relu; and when h
/// is not NULL, h = y rounded to bf16 (CKernels_to_bf16), the next layer's operand.
void CKernels_bias_activation(float *y, const float *b, size_t rows, size_t cols, size_t ld, int relu, uint16_t *h);

/// A dense layer's backward prologue on rows x cols (row stride ld): with relu, dy = (y > 0 ? dy : 0); then
/// db += the column sums of dy, each summed over the rows in order (so any split by columns gives the same bits);
/// and when dh is not NULL, dh = the masked dy rounded to bf16, the operand of the layer's bf16 products.
void CKernels_activation_backward(float *dy, const float *y, float *db, size_t rows, size_t cols, size_t ld, int relu,
                                  uint16_t *dh);

/// Runs task(context, part) for part = 0 ..< parts: part 0 on the calling thread, the others on a pool of
/// persistent threads (started on first use, as many as the largest `parts` asked for, minus one). Returns when all
/// are done. Allocates nothing after the pool has grown, unlike Dispatch's concurrentPerform. A call made while
/// another is running (from a task, or from a second thread) runs all its parts on its own thread.
void CKernels_parallel(long parts, void (*task)(void *context, long part), void *context);

// The same, split into `parts` contiguous pieces run by CKernels_parallel (flat ranges on multiples of 16 elements; the
// bias/ReLU forward by rows, its backward by columns). Every element sees the same arithmetic whatever the split.
int CKernels_adam_update_parallel(float *p, const float *g, float *m, float *v, size_t n,
                            float lr, float b1, float b2, float c1, float c2, float eps, long parts);
int CKernels_sgd_update_parallel(float *p, const float *g, float *v, size_t n, float lr, float mu, long parts);
void CKernels_bias_activation_parallel(float *y, const float *b, size_t rows, size_t cols, int relu, uint16_t *h, long parts);
void CKernels_activation_backward_parallel(float *dy, const float *y, float *db, size_t rows, size_t cols, int relu,
                                           uint16_t *dh, long parts);
void CKernels_zero_parallel(float *x, size_t n, long parts);

/// Augmentation: each of `rows` rows of `clean` (planes of side x side values) under its affine transform into `out`.
/// `params` holds four values per row: the shift (dx, dy) in pixels and the cosine and sine of the angle. Each target
/// pixel samples its plane bilinearly at the inverse-transformed position (undo the shift, turn by -angle about the
/// centre), reading 0 outside. Rows are split over `parts` threads; a row's values do not depend on the split.
void CKernels_affine_bilinear_parallel(const float *clean, float *out, size_t rows, size_t side, size_t planes,
                                       const double *params, long parts);

/// bfloat16 operands for a product: y[i] = x[i] rounded to bfloat16 (its upper 16 bits) to nearest, ties to even (a
/// NaN stays a NaN; past the largest bf16, Inf; subnormals rounded, not flushed). The second splits n over `parts`
/// threads; each element's value does not depend on the split.
void CKernels_to_bf16(const float *x, uint16_t *y, size_t n);
void CKernels_to_bf16_parallel(const float *x, uint16_t *y, size_t n, long parts);

/// One chunk [first, end) of one epoch of UMAP's layout SGD (Clustering's UMAP.layout says what it computes): copies
/// the chunk's rows of y (n x dims, rows `stride` floats apart) into out (the same layout), then moves them one after
/// the other, reading other chunks' points in y; the padding past `dims` is neither read nor written.
/// row_start/tails/per_sample are the sampled edges by head; next_sample/next_negative their schedules (updated).
/// The negative samples of point i come from xoshiro256** seeded by (seed, stream, epoch << 32 | i), as Tensor's
/// Xoshiro256(seed:stream:index:). Plain C without contraction, libm's powf: the same bits on every CPU.
/// Returns 0 when it could not allocate its plans (the chunk is then left part moved).
int CKernels_umap_layout_chunk(const float *y, float *out, long first, long end, long n, long dims, long stride,
                                const long *row_start, const int32_t *tails, const double *per_sample,
                                double *next_sample, double *next_negative, float a, float b, float alpha,
                                float cross_step, double now, double negatives, uint64_t seed, uint64_t stream,
                                uint64_t epoch);

/// The spectral start's passes (Clustering's UMAP.spectralLayout) over rows [first, end) of its (n x block) doubles:
/// the Swift loops' operations in their order, row after row, without contraction, so the same bits on every CPU;
/// every sum adds into a partial the caller zeroed for the rows' chunk.
///
/// The product y = A x = (x + W x) / 2, or with `filter` a step of its Chebyshev filter, y <- 2 (A x - centre x) /
/// half_width - y. x and y not overlapping; row i's edges at row_start[i] ..< row_start[i + 1] (tails; edge e's value
/// at values[e - values_from], so that values may hold only the edges from values_from on). Row i's sum s starts as
/// row i of x and adds value * the tail's row edge by edge, then y = s * 0.5, or 2 * (s * 0.5 - centre * x) /
/// half_width - y; the row a few edges ahead is prefetched (the reads are random). Without `filter` and with `h`
/// (block x block), h[p][q] += x[i][p] * y[i][q] too (the Rayleigh-Ritz matrix X^T A X).
void CKernels_spectral_rows(const double *x, double *y, const long *row_start, const int32_t *tails, const double *values,
                            long values_from, long block, long first, long end, double centre, double half_width,
                            int filter, double *h);

/// out[c] += v[i] * x[i][c] (block), the projections of x's columns on v.
void CKernels_spectral_dot(const double *x, const double *v, double *out, long block, long first, long end);

/// Each row in turn: with `t`, x[i] -= t * trivial[i] (the trivial vector's part removed); with `r` (block x block,
/// upper triangular), x[i] <- x[i] r^-1 by forward substitution; with `gram` (block x block), gram[p][q] += x[i][p] *
/// x[i][q] for q >= p, of the row so changed. Any of the three may be NULL.
void CKernels_spectral_orthogonalise(double *x, const double *trivial, const double *t, const double *r, double *gram,
                                     long block, long first, long end);

/// The Rayleigh-Ritz turn of rows x[i] and ax[i] (= (A x)[i]) by `turn` (block x block: row <- row turn, through a
/// zeroed buffer); then squares[c] += (ax[i][c] - ritz[c] x[i][c])^2 for c < dims (the residuals), and ax[i] <-
/// (ax[i] - centre x[i]) / half_width, the Chebyshev filter's first step.
void CKernels_spectral_turn(double *x, double *ax, const double *turn, const double *ritz, double *squares, long block,
                            long dims, double centre, double half_width, long first, long end);

/// The squared Euclidean distance of two rows of n bytes, summed exactly (the same number from every body; distance.c),
/// on the body of `level` (0 scalar, 1 AVX2, 2 AVX-512) or the widest below it that the CPU has: 2 for the widest, a
/// lower one for the tests, which compare the bodies.
uint64_t CKernels_squared_distance_u8_at(const uint8_t *a, const uint8_t *b, long n, int level);
/// The widest body the CPU has (0, 1 or 2).
int CKernels_squared_distance_u8_level(void);

/// Float rows (distance.c): in 32 partial sums added by a fixed tree, then the rest in order; rows shorter than 32
/// are one sum in order. The same bits from every body; `level` as for bytes (AVX-512F for 2).
/// The squared Euclidean distance of two rows of n floats.
float CKernels_squared_distance_f32_at(const float *a, const float *b, long n, int level);
/// start + normal . p (a tree's side of its hyperplane), of a float row or a row of bytes.
float CKernels_side_f32_at(const float *normal, const float *p, long n, float start, int level);
float CKernels_side_u8_at(const float *normal, const uint8_t *p, long n, float start, int level);
/// The widest body those have on this CPU (0, 1 or 2).
int CKernels_float_rows_level(void);

/// NN-descent's candidates: out[i] = the squared distance of point u and point rows[i], each summed as the
/// single-pair kernels sum it, for i < count; point r is row r of x (rows of D = dims), or row point[r] when `point`
/// is given. The rows ahead are fetched from memory while the current ones are summed. Of bytes the exact integer
/// sum, rounded to float once.
void CKernels_squared_distances_f32(float *out, const float *x, long dims, long u, const int32_t *rows, long count,
                                    const long *point, int level);
void CKernels_squared_distances_u8(float *out, const uint8_t *x, long dims, long u, const int32_t *rows, long count,
                                   const long *point, int level);

/// 1 when the vector path is in use (for `info`).
int CKernels_vectorised(void);

/// Graceful stop: from now on the first of these signals is only recorded (CKernels_stop_received returns it);
/// a second one ends the process with that signal's default action. 0 on success, -1 if sigaction failed.
int CKernels_stop_install(const int *signals, int count);
/// Back to the default actions (a process ending on an error must not outlive mpirun's SIGTERM); a signal that came
/// already takes effect now.
void CKernels_stop_release(const int *signals, int count);
/// The first stop signal received since CKernels_stop_install, or 0.
int CKernels_stop_received(void);
/// Seconds since that signal came (monotonic clock), or 0 when none came.
double CKernels_stop_seconds_since(void);

#endif
