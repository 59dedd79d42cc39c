// Q8Conv_8x16_NEONDOT — see edge_microkernels.h and q8ConvTile8x16SIMD (the Swift twin with the contract).
// 32 q registers cannot hold 8 x 16 int32 accumulators plus operands, so the tile runs as two halves of 8
// positions: 16 accumulators (8 rows x 2 groups of 4 positions), per 4-channel block 2 activation loads and 2
// weight loads (rows 0-3 and 4-7, one row per 32-bit lane) and 16 `sdot v.4s, v.16b, v.4b[lane]`.
// sdot multiplies signed bytes, so activations are flipped on load (u XOR 0x80 = u - 128) and the zero point
// moves by 128: acc' = acc - 128*sum, d = acc' - (zero - 128)*sum = acc - zero*sum, exactly the VNNI integers.
#include "edge_microkernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <sys/auxv.h>

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

int edge_cpu_has_dotprod(void) { return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0; }

__attribute__((target("dotprod")))
static void edge_q8conv_8x16_neondot_half(const int8_t *a, const int32_t *sums, const uint8_t *b, long plane_bytes, long blocks,
                      const int32_t *offsets, long taps, const float *scales, const int32_t *zeros, float *out, long first) {
    float32x4_t f[8][2];
    for (int r = 0; r < 8; r++) { f[r][0] = vdupq_n_f32(0); f[r][1] = vdupq_n_f32(0); }
    const uint8x16_t flip = vdupq_n_u8(0x80);
    for (long t = 0; t < taps; t++) {
        const long off = offsets[t] + first;
        int32x4_t acc[8][2];
        for (int r = 0; r < 8; r++) { acc[r][0] = vdupq_n_s32(0); acc[r][1] = vdupq_n_s32(0); }
        const int8_t *w = a + t * blocks * 32;
        const uint8_t *src = b + 4 * off;
        for (long k = 0; k < blocks; k++) {
            const int8x16_t x0 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src), flip));
            const int8x16_t x1 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src + 16), flip));
            const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16);
#define EDGE_Q8_ROW(r, wq, lane) \
            acc[r][0] = vdotq_laneq_s32(acc[r][0], x0, wq, lane); acc[r][1] = vdotq_laneq_s32(acc[r][1], x1, wq, lane)
            EDGE_Q8_ROW(0, w0, 0); EDGE_Q8_ROW(1, w0, 1); EDGE_Q8_ROW(2, w0, 2); EDGE_Q8_ROW(3, w0, 3);
            EDGE_Q8_ROW(4, w1, 0); EDGE_Q8_ROW(5, w1, 1); EDGE_Q8_ROW(6, w1, 2); EDGE_Q8_ROW(7, w1, 3);
#undef EDGE_Q8_ROW
            w += 32;
            src += plane_bytes;
        }
        const float32x4_t s0 = vld1q_f32(scales + off), s1 = vld1q_f32(scales + off + 4);
        const int32x4_t z0 = vsubq_s32(vld1q_s32(zeros + off), vdupq_n_s32(128));
        const int32x4_t z1 = vsubq_s32(vld1q_s32(zeros + off + 4), vdupq_n_s32(128));
        for (int r = 0; r < 8; r++) {
            const int32_t sum = sums[t * 8 + r];
            const int32x4_t d0 = vsubq_s32(acc[r][0], vmulq_n_s32(z0, sum)), d1 = vsubq_s32(acc[r][1], vmulq_n_s32(z1, sum));
            f[r][0] = vfmaq_f32(f[r][0], vcvtq_f32_s32(d0), s0);
            f[r][1] = vfmaq_f32(f[r][1], vcvtq_f32_s32(d1), s1);
        }
    }
    for (int r = 0; r < 8; r++) { vst1q_f32(out + r * 16 + first, f[r][0]); vst1q_f32(out + r * 16 + first + 4, f[r][1]); }
}

void edge_q8conv_8x16_neondot(const int8_t *a, const int32_t *sums, const uint8_t *b, long plane_bytes, long blocks,
                              const int32_t *offsets, long taps, const float *scales, const int32_t *zeros, float *out) {
    edge_q8conv_8x16_neondot_half(a, sums, b, plane_bytes, blocks, offsets, taps, scales, zeros, out, 0);
    edge_q8conv_8x16_neondot_half(a, sums, b, plane_bytes, blocks, offsets, taps, scales, zeros, out, 8);
}

#else

int edge_cpu_has_dotprod(void) { return 0; }

void edge_q8conv_8x16_neondot(const int8_t *a, const int32_t *sums, const uint8_t *b, long plane_bytes, long blocks,
                              const int32_t *offsets, long taps, const float *scales, const int32_t *zeros, float *out) {
    (void)a; (void)sums; (void)b; (void)plane_bytes; (void)blocks; (void)offsets; (void)taps; (void)scales; (void)zeros; (void)out;
    __builtin_trap();  // callers check edge_cpu_has_dotprod() first
}

#endif
