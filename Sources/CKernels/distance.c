// See CKernels.h: the squared Euclidean distance of two rows of bytes (image pixels), summed exactly in integers, so
// every body (AVX-512, AVX2, scalar) gives the same number on any CPU.
#include "CKernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
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

__attribute__((target("avx2")))
static uint64_t squared_distance_u8_avx2(const uint8_t *a, const uint8_t *b, long n) {
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

uint64_t CKernels_squared_distance_u8(const uint8_t *a, const uint8_t *b, long n) {
    return CKernels_squared_distance_u8_at(a, b, n, 2);
}
