// See CKernels.h: one chunk of one UMAP layout epoch (the spectral start's kernels are in spectral.c). The arithmetic
// of the Swift loop it replaced, operation for operation (no fused multiply-add, libm's powf), so it keeps its bits;
// plain C, the same on every CPU.
// N = points, D = layout dims, S = row stride (floats from one point's row to the next, >= D).
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"
#include <math.h>
#include <stdlib.h>

/// SplitMix64 and xoshiro256**, as Tensor's Random.swift draws them.
typedef struct { uint64_t s0, s1, s2, s3; } xoshiro;

static inline uint64_t splitmix(uint64_t *state) {
    *state += 0x9E3779B97F4A7C15ull;
    uint64_t z = *state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/// Xoshiro256(seed:stream:index:).
static inline xoshiro xoshiro_stream(uint64_t seed, uint64_t stream, uint64_t index) {
    uint64_t mixer = seed ^ (stream * 0xD1B54A32D192ED03ull) ^ (index * 0x8CB92BA72F3D8DD7ull);
    (void)splitmix(&mixer);
    uint64_t inner = splitmix(&mixer);
    xoshiro x;
    x.s0 = splitmix(&inner);
    x.s1 = splitmix(&inner);
    x.s2 = splitmix(&inner);
    x.s3 = splitmix(&inner);
    return x;
}

static inline uint64_t xoshiro_next(xoshiro *x) {
    uint64_t m = x->s1 * 5;
    uint64_t result = ((m << 7) | (m >> 57)) * 9;
    uint64_t t = x->s1 << 17;
    x->s2 ^= x->s0; x->s3 ^= x->s1; x->s1 ^= x->s2; x->s0 ^= x->s3;
    x->s2 ^= t;
    x->s3 = (x->s3 << 45) | (x->s3 >> 19);
    return result;
}

static inline float clip4(float v) {  // Swift's min(max(v, -4), 4), NaN kept
    float low = (-4.0f >= v) ? -4.0f : v;
    return (4.0f < low) ? 4.0f : low;
}

/// Where point t stands for the chunk [first, end): in out when it is one of the chunk's (moved already, or to be),
/// else in y, where the epoch found it.
static inline float *position(const float *y, const float *out, long first, long end, long stride, long t) {
    return (float *)((t >= first && t < end) ? out + t * stride : y + t * stride);
}

/// Point i's moves of one epoch, drawn before they are made: its edges due this epoch (and how many negative samples
/// each owes), then every negative sample's target in the order of the moves. Drawing a point's targets while the
/// previous point moves lets their positions be fetched from memory ahead (at a million points they are cache misses).
typedef struct {
    long *edges, *counts, *targets;
    long edge_count, target_count, edge_capacity, count_capacity, target_capacity;
} plan;

static int plan_reserve(long **buffer, long *capacity, long needed) {
    if (needed <= *capacity) return 1;
    long grown = needed > 2 * *capacity ? needed : 2 * *capacity;
    long *resized = realloc(*buffer, (size_t)grown * sizeof(long));
    if (!resized) return 0;
    *buffer = resized;
    *capacity = grown;
    return 1;
}

/// 0 when memory ran out.
static int plan_point(plan *p, long i, const float *y, const float *out, long first, long end, long n, long stride,
                      const long *row_start, const int32_t *tails, const double *per_sample, const double *next_sample,
                      const double *next_negative, double now, double negatives, uint64_t seed, uint64_t stream,
                      uint64_t epoch) {
    xoshiro draws = xoshiro_stream(seed, stream, (epoch << 32) | (uint64_t)i);
    p->edge_count = 0;
    p->target_count = 0;
    if (!plan_reserve(&p->edges, &p->edge_capacity, row_start[i + 1] - row_start[i])) return 0;
    if (!plan_reserve(&p->counts, &p->count_capacity, row_start[i + 1] - row_start[i])) return 0;
    for (long e = row_start[i]; e < row_start[i + 1]; e++) {
        if (!(next_sample[e] <= now)) continue;
        __builtin_prefetch(position(y, out, first, end, stride, tails[e]), 0, 3);
        double owed = (now - next_negative[e]) / (per_sample[e] / negatives);
        long count = owed > 0 ? (long)owed : 0;
        p->edges[p->edge_count] = e;
        p->counts[p->edge_count++] = count;
        if (!plan_reserve(&p->targets, &p->target_capacity, p->target_count + count)) return 0;
        for (long k = 0; k < count; k++) {
            long t = (long)(xoshiro_next(&draws) % (uint64_t)n);
            p->targets[p->target_count++] = t;
            __builtin_prefetch(position(y, out, first, end, stride, t), 0, 3);
        }
    }
    return 1;
}

int CKernels_umap_layout_chunk(const float *y, float *out, long first, long end, long n, long dims, long stride,
                               const long *row_start, const int32_t *tails, const double *per_sample,
                               double *next_sample, double *next_negative, float a, float b, float alpha,
                               float cross_step, double now, double negatives, uint64_t seed, uint64_t stream,
                               uint64_t epoch) {
    for (long i = first; i < end; i++)
        for (long d = 0; d < dims; d++) out[i * stride + d] = y[i * stride + d];
    float step[dims > 0 ? dims : 1];
    plan plans[2] = {{0}, {0}};
    int ok = first >= end || plan_point(&plans[0], first, y, out, first, end, n, stride, row_start, tails, per_sample,
                                        next_sample, next_negative, now, negatives, seed, stream, epoch);
    for (long i = first; ok && i < end; i++) {
        plan *mine = &plans[(i - first) & 1];
        if (i + 1 < end)  // the next point's draws and prefetches, its edges untouched by this point's moves
            ok = plan_point(&plans[(i + 1 - first) & 1], i + 1, y, out, first, end, n, stride, row_start, tails, per_sample,
                            next_sample, next_negative, now, negatives, seed, stream, epoch);
        float *current = out + i * stride;
        const long *targets = mine->targets;
        for (long k = 0; k < mine->edge_count; k++) {
            long e = mine->edges[k], count = mine->counts[k];
            long t = tails[e];
            int in_chunk = t >= first && t < end;
            float *other = position(y, out, first, end, stride, t);
            float d2 = 0;
            for (long d = 0; d < dims; d++) { float v = current[d] - other[d]; d2 += v * v; }
            if (d2 > 0) {
                float power = powf(d2, b);
                float attract = -2.0f * a * b * power / d2 / (a * power + 1.0f);
                for (long d = 0; d < dims; d++) {
                    float g = clip4(attract * (current[d] - other[d])) * alpha;
                    if (in_chunk) {
                        current[d] += g;
                        other[d] -= g;
                    } else {
                        current[d] += cross_step * g;
                    }
                }
            }
            next_sample[e] += per_sample[e];
            // The repulsions of up to 8 samples at a time, all from where the point stood before them, added up:
            // independent, so their loads and powers overlap.
            for (long done = 0; done < count;) {
                long batch = count - done < 8 ? count - done : 8;
                for (long d = 0; d < dims; d++) step[d] = 0;
                for (long slot = 0; slot < batch; slot++) {
                    if (targets[slot] == i) continue;
                    const float *far = position(y, out, first, end, stride, targets[slot]);
                    float e2 = 0;
                    for (long d = 0; d < dims; d++) { float v = current[d] - far[d]; e2 += v * v; }
                    if (e2 > 0) {
                        float repel = 2.0f * b / ((0.001f + e2) * (a * powf(e2, b) + 1.0f));
                        for (long d = 0; d < dims; d++) step[d] += clip4(repel * (current[d] - far[d]));
                    } else {
                        for (long d = 0; d < dims; d++) step[d] += 4.0f;
                    }
                }
                for (long d = 0; d < dims; d++) current[d] += step[d] * alpha;
                targets += batch;
                done += batch;
            }
            next_negative[e] += (double)count * (per_sample[e] / negatives);
        }
    }
    for (int k = 0; k < 2; k++) { free(plans[k].edges); free(plans[k].counts); free(plans[k].targets); }
    return ok;
}
