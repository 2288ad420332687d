// See CKernels.h: what NN-descent and the exact search compute between rows: squared Euclidean distances of bytes
// (image pixels), summed exactly in integers, and of floats, and the side of a tree's hyperplane a row lies on. Every
// body (AVX-512, AVX2, scalar) gives the same number on any CPU.
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))
#endif

static uint64_t squared_distance_u8_scalar(const uint8_t *a, const uint8_t *b, long from, long n) {
    uint64_t sum = 0;
    for (long i = from; i < n; i++) {
        const int32_t d = (int32_t)a[i] - (int32_t)b[i];
        sum += (uint64_t)(d * d);
    }
    return sum;
}

// A 32-bit lane gains at most 2 x 255^2 = 130,050 a step (two products of `madd`), so the lanes are added into the
// 64-bit total every `stretch` bytes: 16,384 bytes in 16 lanes are 512 steps a lane, at most 66.6 M.
enum { stretch = 16384 };

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw")))
static uint64_t squared_distance_u8_avx512(const uint8_t *a, const uint8_t *b, long n) {
    uint64_t sum = 0;
    long i = 0;
    while (i + 32 <= n) {
        const long end = i + stretch < n ? i + stretch : n;
        __m512i lanes = _mm512_setzero_si512();
        for (; i + 32 <= end; i += 32) {
            const __m512i x = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(a + i)));
            const __m512i y = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(b + i)));
            const __m512i d = _mm512_sub_epi16(x, y);  // in [-255, 255]
            lanes = _mm512_add_epi32(lanes, _mm512_madd_epi16(d, d));
        }
        uint32_t parts[16];
        _mm512_storeu_si512((void *)parts, lanes);
        for (int p = 0; p < 16; p++) sum += parts[p];
    }
    return sum + squared_distance_u8_scalar(a, b, i, n);
}

AVX2 static uint64_t squared_distance_u8_avx2(const uint8_t *a, const uint8_t *b, long n) {
    uint64_t sum = 0;
    long i = 0;
    while (i + 16 <= n) {
        const long end = i + stretch / 2 < n ? i + stretch / 2 : n;  // 8 lanes: the same bound a lane
        __m256i lanes = _mm256_setzero_si256();
        for (; i + 16 <= end; i += 16) {
            const __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
            const __m256i y = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b + i)));
            const __m256i d = _mm256_sub_epi16(x, y);
            lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(d, d));
        }
        uint32_t parts[8];
        _mm256_storeu_si256((__m256i *)parts, lanes);
        for (int p = 0; p < 8; p++) sum += parts[p];
    }
    return sum + squared_distance_u8_scalar(a, b, i, n);
}

static int byte_level(void) {
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f")) return 2;
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}
#else
static int byte_level(void) { return 0; }
#endif

int CKernels_squared_distance_u8_level(void) { return byte_level(); }

uint64_t CKernels_squared_distance_u8_at(const uint8_t *a, const uint8_t *b, long n, int level) {
    if (level > byte_level()) level = byte_level();
#if defined(__x86_64__)
    if (level == 2) return squared_distance_u8_avx512(a, b, n);
    if (level == 1) return squared_distance_u8_avx2(a, b, n);
#endif
    return squared_distance_u8_scalar(a, b, 0, n);
}

// Float rows: the squared distance and the trees' side of a hyperplane, in 32 partial sums (lane j takes the elements
// j, j + 32, j + 64, ... in order) added by a fixed tree (part[j] += part[j + 16] for j < 16, then the same with 8, 4,
// 2 and 1), then the rest in order.
// Every body does exactly these operations (multiply, then add: no fused multiply-add), so they agree bit for bit.
// Rows shorter than 32 are one sum in order, as the Swift loops before them: narrow points keep their bits.
enum { partials = 32 };

static inline float fold(float *part) {
    for (int width = partials / 2; width >= 1; width /= 2) {
        for (int j = 0; j < width; j++) part[j] += part[j + width];
    }
    return part[0];
}

static float squared_distance_f32_scalar(const float *a, const float *b, long n) {
    float part[partials] = {0};
    long i = 0;
    for (; i + partials <= n; i += partials) {
        for (int j = 0; j < partials; j++) { const float t = a[i + j] - b[i + j]; part[j] += t * t; }
    }
    float sum = i > 0 ? fold(part) : 0;
    for (; i < n; i++) { const float t = a[i] - b[i]; sum += t * t; }
    return sum;
}

static float side_f32_scalar(const float *normal, const float *p, long n, float start) {
    float part[partials] = {0};
    long i = 0;
    for (; i + partials <= n; i += partials) {
        for (int j = 0; j < partials; j++) part[j] += normal[i + j] * p[i + j];
    }
    float sum = i > 0 ? start + fold(part) : start;
    for (; i < n; i++) sum += normal[i] * p[i];
    return sum;
}

static float side_u8_scalar(const float *normal, const uint8_t *p, long n, float start) {
    float part[partials] = {0};
    long i = 0;
    for (; i + partials <= n; i += partials) {
        for (int j = 0; j < partials; j++) part[j] += normal[i + j] * (float)p[i + j];
    }
    float sum = i > 0 ? start + fold(part) : start;
    for (; i < n; i++) sum += normal[i] * (float)p[i];
    return sum;
}

#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f")))

// lanes 0-15 and 16-31 in two registers: the fold's first step is their sum, the rest halves the register.
AVX512 static inline float fold512(__m512 low, __m512 high) {
    float part[16];
    _mm512_storeu_ps(part, _mm512_add_ps(low, high));
    for (int width = 8; width >= 1; width /= 2) {
        for (int j = 0; j < width; j++) part[j] += part[j + width];
    }
    return part[0];
}

AVX512 static float squared_distance_f32_avx512(const float *a, const float *b, long n) {
    __m512 low = _mm512_setzero_ps(), high = _mm512_setzero_ps();
    long i = 0;
    for (; i + partials <= n; i += partials) {
        const __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        const __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        low = _mm512_add_ps(low, _mm512_mul_ps(t0, t0));
        high = _mm512_add_ps(high, _mm512_mul_ps(t1, t1));
    }
    float sum = i > 0 ? fold512(low, high) : 0;
    for (; i < n; i++) { const float t = a[i] - b[i]; sum += t * t; }
    return sum;
}

AVX512 static float side_f32_avx512(const float *normal, const float *p, long n, float start) {
    __m512 low = _mm512_setzero_ps(), high = _mm512_setzero_ps();
    long i = 0;
    for (; i + partials <= n; i += partials) {
        low = _mm512_add_ps(low, _mm512_mul_ps(_mm512_loadu_ps(normal + i), _mm512_loadu_ps(p + i)));
        high = _mm512_add_ps(high, _mm512_mul_ps(_mm512_loadu_ps(normal + i + 16), _mm512_loadu_ps(p + i + 16)));
    }
    float sum = i > 0 ? start + fold512(low, high) : start;
    for (; i < n; i++) sum += normal[i] * p[i];
    return sum;
}

AVX512 static inline __m512 bytes512(const uint8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

AVX512 static float side_u8_avx512(const float *normal, const uint8_t *p, long n, float start) {
    __m512 low = _mm512_setzero_ps(), high = _mm512_setzero_ps();
    long i = 0;
    for (; i + partials <= n; i += partials) {
        low = _mm512_add_ps(low, _mm512_mul_ps(_mm512_loadu_ps(normal + i), bytes512(p + i)));
        high = _mm512_add_ps(high, _mm512_mul_ps(_mm512_loadu_ps(normal + i + 16), bytes512(p + i + 16)));
    }
    float sum = i > 0 ? start + fold512(low, high) : start;
    for (; i < n; i++) sum += normal[i] * (float)p[i];
    return sum;
}

// lanes 0-7, 8-15, 16-23, 24-31 in four registers: the fold's first step adds the third to the first and the fourth
// to the second, its second step those two.
AVX2 static inline float fold256(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    float part[8];
    _mm256_storeu_ps(part, _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3)));
    for (int width = 4; width >= 1; width /= 2) {
        for (int j = 0; j < width; j++) part[j] += part[j + width];
    }
    return part[0];
}

AVX2 static float squared_distance_f32_avx2(const float *a, const float *b, long n) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    long i = 0;
    for (; i + partials <= n; i += partials) {
        for (int r = 0; r < 4; r++) {
            const __m256 t = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8 * r), _mm256_loadu_ps(b + i + 8 * r));
            acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(t, t));
        }
    }
    float sum = i > 0 ? fold256(acc[0], acc[1], acc[2], acc[3]) : 0;
    for (; i < n; i++) { const float t = a[i] - b[i]; sum += t * t; }
    return sum;
}

AVX2 static float side_f32_avx2(const float *normal, const float *p, long n, float start) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    long i = 0;
    for (; i + partials <= n; i += partials) {
        for (int r = 0; r < 4; r++) {
            const __m256 x = _mm256_loadu_ps(p + i + 8 * r);
            acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(_mm256_loadu_ps(normal + i + 8 * r), x));
        }
    }
    float sum = i > 0 ? start + fold256(acc[0], acc[1], acc[2], acc[3]) : start;
    for (; i < n; i++) sum += normal[i] * p[i];
    return sum;
}

AVX2 static float side_u8_avx2(const float *normal, const uint8_t *p, long n, float start) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    long i = 0;
    for (; i + partials <= n; i += partials) {
        for (int r = 0; r < 4; r++) {
            const __m128i bytes = _mm_loadl_epi64((const __m128i *)(p + i + 8 * r));
            const __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
            acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(_mm256_loadu_ps(normal + i + 8 * r), x));
        }
    }
    float sum = i > 0 ? start + fold256(acc[0], acc[1], acc[2], acc[3]) : start;
    for (; i < n; i++) sum += normal[i] * (float)p[i];
    return sum;
}

static int float_level(void) {
    if (__builtin_cpu_supports("avx512f")) return 2;
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}
#else
static int float_level(void) { return 0; }
#endif

int CKernels_float_rows_level(void) { return float_level(); }

float CKernels_squared_distance_f32_at(const float *a, const float *b, long n, int level) {
    if (level > float_level()) level = float_level();
#if defined(__x86_64__)
    if (level == 2) return squared_distance_f32_avx512(a, b, n);
    if (level == 1) return squared_distance_f32_avx2(a, b, n);
#endif
    return squared_distance_f32_scalar(a, b, n);
}

float CKernels_side_f32_at(const float *normal, const float *p, long n, float start, int level) {
    if (level > float_level()) level = float_level();
#if defined(__x86_64__)
    if (level == 2) return side_f32_avx512(normal, p, n, start);
    if (level == 1) return side_f32_avx2(normal, p, n, start);
#endif
    return side_f32_scalar(normal, p, n, start);
}

float CKernels_side_u8_at(const float *normal, const uint8_t *p, long n, float start, int level) {
    if (level > float_level()) level = float_level();
#if defined(__x86_64__)
    if (level == 2) return side_u8_avx512(normal, p, n, start);
    if (level == 1) return side_u8_avx2(normal, p, n, start);
#endif
    return side_u8_scalar(normal, p, n, start);
}

// Many rows against one: the rows `ahead` places on are fetched while the current one is summed (at a million
// points their loads miss every cache, and a miss left to the distance loop stalls it).
enum { ahead = 8 };

static inline void fetch_row(const void *row, long bytes) {
    for (long line = 0; line < bytes; line += 64) __builtin_prefetch((const char *)row + line, 0, 3);
    __builtin_prefetch((const char *)row + bytes - 1, 0, 3);
}

static inline long row_of(const long *point, long r) { return point ? point[r] : r; }

void CKernels_squared_distances_f32(float *out, const float *x, long dims, long u, const int32_t *rows, long count,
                                    const long *point, int level) {
    const float *a = x + row_of(point, u) * dims;
    for (long i = 0; i < count && i < ahead; i++) fetch_row(x + row_of(point, rows[i]) * dims, dims * (long)sizeof(float));
    for (long i = 0; i < count; i++) {
        if (i + ahead < count) fetch_row(x + row_of(point, rows[i + ahead]) * dims, dims * (long)sizeof(float));
        const float *b = x + row_of(point, rows[i]) * dims;
        if (dims < partials) {  // a narrow row summed here, saving the call (every body sums it so: one sum in order)
            float sum = 0;
            for (long e = 0; e < dims; e++) { const float t = a[e] - b[e]; sum += t * t; }
            out[i] = sum;
        } else {
            out[i] = CKernels_squared_distance_f32_at(a, b, dims, level);
        }
    }
}

void CKernels_squared_distances_u8(float *out, const uint8_t *x, long dims, long u, const int32_t *rows, long count,
                                   const long *point, int level) {
    const uint8_t *a = x + row_of(point, u) * dims;
    for (long i = 0; i < count && i < ahead; i++) fetch_row(x + row_of(point, rows[i]) * dims, dims);
    for (long i = 0; i < count; i++) {
        if (i + ahead < count) fetch_row(x + row_of(point, rows[i + ahead]) * dims, dims);
        out[i] = (float)CKernels_squared_distance_u8_at(a, x + row_of(point, rows[i]) * dims, dims, level);
    }
}
