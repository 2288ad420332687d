// See CKernels.h: the spectral start's passes over its block of rows (Clustering's UMAP.spectralLayout). Each is the
// arithmetic of the Swift loops it replaced, operation for operation and row after row (no fused multiply-add), so
// the start keeps its bits; plain C, the same on every CPU. Every sum a pass takes is over its rows in order, into
// the caller's partial of one chunk.
// B = block (vectors), rows of B doubles.
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"

// Each pass is written once, inlined into its entry point and, for a block of 16 (the default's 10 components and 6
// more) where the CPU has AVX2, into a copy with the block a constant compiled for AVX2: wider vectors doing the same
// operations on every element, so the same bits. The filter's 63 products on a million embedded points (2 ranks):
// 4.7-4.9 s with the copy, 6.8-7.9 s without.
#define INLINE static inline __attribute__((always_inline))
#if defined(__x86_64__)
#define AVX2 __attribute__((target("avx2")))
#else
#define AVX2
#endif
static int wide(long block) { return block == 16 && CKernels_vectorised(); }

/// The product's rows.
INLINE void spectral_rows(const double *x, double *y, const long *row_start, const int32_t *tails, const double *values,
                          long values_from, long block, long first, long end, double centre, double half_width, int filter,
                          double *h) {
    const long ahead = 8, last = row_start[end];
    double sum[block > 0 ? block : 1];
    for (long i = first; i < end; i++) {
        double *out = y + i * block;
        const double *own = x + i * block;
        for (long c = 0; c < block; c++) sum[c] = own[c];
        for (long e = row_start[i]; e < row_start[i + 1]; e++) {
            if (e + ahead < last) {
                const double *next = x + (long)tails[e + ahead] * block;
                for (long c = 0; c < block; c += 8) __builtin_prefetch(next + c, 0, 3);
            }
            const double *other = x + (long)tails[e] * block, w = values[e - values_from];
            for (long c = 0; c < block; c++) sum[c] += w * other[c];
        }
        if (filter) {
            for (long c = 0; c < block; c++) out[c] = 2 * (sum[c] * 0.5 - centre * own[c]) / half_width - out[c];
        } else {
            for (long c = 0; c < block; c++) out[c] = sum[c] * 0.5;
            if (h) {
                for (long p = 0; p < block; p++) {
                    const double xp = own[p];
                    double *hp = h + p * block;
                    for (long q = 0; q < block; q++) hp[q] += xp * out[q];
                }
            }
        }
    }
}

AVX2 static void spectral_rows_16(const double *x, double *y, const long *row_start, const int32_t *tails,
                                  const double *values, long values_from, long first, long end, double centre,
                                  double half_width, int filter, double *h) {
    spectral_rows(x, y, row_start, tails, values, values_from, 16, first, end, centre, half_width, filter, h);
}

void CKernels_spectral_rows(const double *x, double *y, const long *row_start, const int32_t *tails, const double *values,
                            long values_from, long block, long first, long end, double centre, double half_width,
                            int filter, double *h) {
    if (wide(block)) {
        spectral_rows_16(x, y, row_start, tails, values, values_from, first, end, centre, half_width, filter, h);
        return;
    }
    spectral_rows(x, y, row_start, tails, values, values_from, block, first, end, centre, half_width, filter, h);
}

INLINE void spectral_dot(const double *x, const double *v, double *out, long block, long first, long end) {
    for (long i = first; i < end; i++) {
        const double *row = x + i * block, vi = v[i];
        for (long c = 0; c < block; c++) out[c] += vi * row[c];
    }
}

INLINE void spectral_orthogonalise(double *x, const double *trivial, const double *t, const double *r, double *gram,
                                   long block, long first, long end) {
    for (long i = first; i < end; i++) {
        double *row = x + i * block;
        if (t) {
            const double ti = trivial[i];
            for (long c = 0; c < block; c++) row[c] -= t[c] * ti;
        }
        if (r) {
            for (long c = 0; c < block; c++) {
                double v = row[c];
                for (long p = 0; p < c; p++) v -= row[p] * r[p * block + c];
                row[c] = v / r[c * block + c];
            }
        }
        if (gram) {
            for (long p = 0; p < block; p++) {
                const double rp = row[p];
                double *gp = gram + p * block;
                for (long q = p; q < block; q++) gp[q] += rp * row[q];
            }
        }
    }
}

INLINE void spectral_turn(double *x, double *ax, const double *turn, const double *ritz, double *squares, long block,
                          long dims, double centre, double half_width, long first, long end) {
    double turned[block > 0 ? block : 1];
    for (long i = first; i < end; i++) {
        double *rows[2] = {x + i * block, ax + i * block};
        for (int k = 0; k < 2; k++) {
            double *row = rows[k];
            for (long c = 0; c < block; c++) turned[c] = 0;
            for (long p = 0; p < block; p++) {
                const double rp = row[p];
                const double *tp = turn + p * block;
                for (long c = 0; c < block; c++) turned[c] += rp * tp[c];
            }
            for (long c = 0; c < block; c++) row[c] = turned[c];
        }
        double *xr = rows[0], *ar = rows[1];
        for (long c = 0; c < dims; c++) {
            const double d = ar[c] - ritz[c] * xr[c];
            squares[c] += d * d;
        }
        for (long c = 0; c < block; c++) ar[c] = (ar[c] - centre * xr[c]) / half_width;
    }
}

AVX2 static void spectral_dot_16(const double *x, const double *v, double *out, long first, long end) {
    spectral_dot(x, v, out, 16, first, end);
}
AVX2 static void spectral_orthogonalise_16(double *x, const double *trivial, const double *t, const double *r, double *gram,
                                           long first, long end) {
    spectral_orthogonalise(x, trivial, t, r, gram, 16, first, end);
}
AVX2 static void spectral_turn_16(double *x, double *ax, const double *turn, const double *ritz, double *squares, long dims,
                                  double centre, double half_width, long first, long end) {
    spectral_turn(x, ax, turn, ritz, squares, 16, dims, centre, half_width, first, end);
}

void CKernels_spectral_dot(const double *x, const double *v, double *out, long block, long first, long end) {
    if (wide(block)) { spectral_dot_16(x, v, out, first, end); return; }
    spectral_dot(x, v, out, block, first, end);
}

void CKernels_spectral_orthogonalise(double *x, const double *trivial, const double *t, const double *r, double *gram,
                                     long block, long first, long end) {
    if (wide(block)) { spectral_orthogonalise_16(x, trivial, t, r, gram, first, end); return; }
    spectral_orthogonalise(x, trivial, t, r, gram, block, first, end);
}

void CKernels_spectral_turn(double *x, double *ax, const double *turn, const double *ritz, double *squares, long block,
                            long dims, double centre, double half_width, long first, long end) {
    if (wide(block)) { spectral_turn_16(x, ax, turn, ritz, squares, dims, centre, half_width, first, end); return; }
    spectral_turn(x, ax, turn, ritz, squares, block, dims, centre, half_width, first, end);
}
