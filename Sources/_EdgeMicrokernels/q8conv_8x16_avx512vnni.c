// Q8Conv_8x16_AVX512VNNI — see edge_microkernels.h and q8ConvTile8x16SIMD (the Swift twin with the contract).
// Per tap: 8 zmm int32 accumulators (one per output channel, 16 positions each); per 4-channel block one 64-byte
// activation load and 8 `vpdpbusd` with the row's 4 weight bytes broadcast. Then, per tap and row,
// d = acc - zero * sum (exact int32) and out = fma(float(d), scale, out), exactly as the Swift twin rounds.
#include "edge_microkernels.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

int edge_cpu_has_avx512vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
}

__attribute__((target("avx512f,avx512bw,avx512vnni")))
void edge_q8conv_8x16_avx512vnni(const int8_t *a, const int32_t *sums, const uint8_t *b, long plane_bytes, long blocks,
                                 const int32_t *offsets, long taps, const float *scales, const int32_t *zeros, float *out) {
    __m512 f0 = _mm512_setzero_ps(), f1 = f0, f2 = f0, f3 = f0, f4 = f0, f5 = f0, f6 = f0, f7 = f0;
    for (long t = 0; t < taps; t++) {
        const long off = offsets[t];
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        const int8_t *w = a + t * blocks * 32;
        const uint8_t *src = b + 4 * off;
        for (long k = 0; k < blocks; k++) {
            const __m512i x = _mm512_loadu_si512((const void *)src);
            int32_t r[8];
            memcpy(r, w, 32);
            a0 = _mm512_dpbusd_epi32(a0, x, _mm512_set1_epi32(r[0]));
            a1 = _mm512_dpbusd_epi32(a1, x, _mm512_set1_epi32(r[1]));
            a2 = _mm512_dpbusd_epi32(a2, x, _mm512_set1_epi32(r[2]));
            a3 = _mm512_dpbusd_epi32(a3, x, _mm512_set1_epi32(r[3]));
            a4 = _mm512_dpbusd_epi32(a4, x, _mm512_set1_epi32(r[4]));
            a5 = _mm512_dpbusd_epi32(a5, x, _mm512_set1_epi32(r[5]));
            a6 = _mm512_dpbusd_epi32(a6, x, _mm512_set1_epi32(r[6]));
            a7 = _mm512_dpbusd_epi32(a7, x, _mm512_set1_epi32(r[7]));
            w += 32;
            src += plane_bytes;
        }
        const __m512 scale = _mm512_loadu_ps(scales + off);
        const __m512i zero = _mm512_loadu_si512((const void *)(zeros + off));
        const int32_t *s = sums + t * 8;
#define EDGE_Q8_TAP(acc, f, i) f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, _mm512_mullo_epi32(zero, _mm512_set1_epi32(s[i])))), scale, f)
        EDGE_Q8_TAP(a0, f0, 0); EDGE_Q8_TAP(a1, f1, 1); EDGE_Q8_TAP(a2, f2, 2); EDGE_Q8_TAP(a3, f3, 3);
        EDGE_Q8_TAP(a4, f4, 4); EDGE_Q8_TAP(a5, f5, 5); EDGE_Q8_TAP(a6, f6, 6); EDGE_Q8_TAP(a7, f7, 7);
#undef EDGE_Q8_TAP
    }
    _mm512_storeu_ps(out, f0); _mm512_storeu_ps(out + 16, f1); _mm512_storeu_ps(out + 32, f2); _mm512_storeu_ps(out + 48, f3);
    _mm512_storeu_ps(out + 64, f4); _mm512_storeu_ps(out + 80, f5); _mm512_storeu_ps(out + 96, f6); _mm512_storeu_ps(out + 112, f7);
}

#else

int edge_cpu_has_avx512vnni(void) { return 0; }

void edge_q8conv_8x16_avx512vnni(const int8_t *a, const int32_t *sums, const uint8_t *b, long plane_bytes, long blocks,
                                 const int32_t *offsets, long taps, const float *scales, const int32_t *zeros, float *out) {
    (void)a; (void)sums; (void)b; (void)plane_bytes; (void)blocks; (void)offsets; (void)taps; (void)scales; (void)zeros; (void)out;
    __builtin_trap();  // callers check edge_cpu_has_avx512vnni() first
}

#endif
