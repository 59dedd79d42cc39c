// Q8Conv_8x16_NEONMLAL — see edge_microkernels.h and q8ConvTile8x16SIMD (the Swift twin with the contract).
// For ARMv8.0 cores without `sdot` (Cortex-A72 of the Pi 4, A53): the gemmlowp / ruy / XNNPACK "neon-mlal" scheme.
// Activations are flipped to signed on load (u XOR 0x80 = u - 128) and the zero point moves by 128, as in the
// sdot kernel, so every integer sum is the VNNI one. Each weight row's 4 channel bytes are broadcast across the
// vector (dup .s[lane]) and `smull`/`smull2` multiply them with 4 positions x 4 channels into int16 lanes, then
// `smlal`/`smlal2` add the next channel block's products into the same lanes: |w| <= 127 (the int8 weight format
// never holds -128) and x in [-128, 127], so two products stay within 2 * 127 * 128 = 32512 < 2^15 and the int16
// sum is exact. `sadalp` widens adjacent lane pairs into int32 accumulators; at the end of a tap `addp` folds each
// position's two channel-pair sums into one int32, and the float epilogue is the sdot kernel's, step for step.
// Two int32 accumulators per row and 4 positions (smull and smull2 halves) make 16 for 8 rows; with two blocks'
// activations and weights and the broadcasts that fills the 32 q registers (the 8 float sums wait on the stack
// during the block loop, a few loads and stores per tap), so the tile runs as 4 quarters of 4 positions.
#include "edge_microkernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

// One weight row's 4 channel bytes in every 32-bit lane (the lane must be a constant, hence a macro).
#define EDGE_Q8_BROADCAST(rows, lane) vreinterpretq_s8_s32(vdupq_laneq_s32(vreinterpretq_s32_s8(rows), lane))

static void edge_q8conv_8x16_neonmlal_quarter(const int8_t *a, const int32_t *sums, const uint8_t *b, long plane_bytes, long blocks,
                                             const int32_t *offsets, long taps, const float *scales, const int32_t *zeros, float *out,
                                             long first) {
    float32x4_t f[8];
    for (int r = 0; r < 8; r++) f[r] = vdupq_n_f32(0);
    const uint8x16_t flip = vdupq_n_u8(0x80);
    for (long t = 0; t < taps; t++) {
        const long off = offsets[t] + first;
        // lo: positions 0-1 (smull), hi: positions 2-3 (smull2); lanes hold channel pairs (c0+c1, c2+c3).
        int32x4_t lo[8], hi[8];
        for (int r = 0; r < 8; r++) { lo[r] = vdupq_n_s32(0); hi[r] = vdupq_n_s32(0); }
        const int8_t *w = a + t * blocks * 32;
        const uint8_t *src = b + 4 * off;
        long k = 0;
        for (; k + 1 < blocks; k += 2) {
            const int8x16_t x0 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src), flip));
            const int8x16_t x1 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src + plane_bytes), flip));
            const int8x16_t w00 = vld1q_s8(w), w01 = vld1q_s8(w + 16), w10 = vld1q_s8(w + 32), w11 = vld1q_s8(w + 48);
#define EDGE_Q8_ROW(r, wk0, wk1, lane) do { \
                const int8x16_t b0 = EDGE_Q8_BROADCAST(wk0, lane), b1 = EDGE_Q8_BROADCAST(wk1, lane); \
                lo[r] = vpadalq_s16(lo[r], vmlal_s8(vmull_s8(vget_low_s8(x0), vget_low_s8(b0)), vget_low_s8(x1), vget_low_s8(b1))); \
                hi[r] = vpadalq_s16(hi[r], vmlal_high_s8(vmull_high_s8(x0, b0), x1, b1)); \
            } while (0)
            EDGE_Q8_ROW(0, w00, w10, 0); EDGE_Q8_ROW(1, w00, w10, 1); EDGE_Q8_ROW(2, w00, w10, 2); EDGE_Q8_ROW(3, w00, w10, 3);
            EDGE_Q8_ROW(4, w01, w11, 0); EDGE_Q8_ROW(5, w01, w11, 1); EDGE_Q8_ROW(6, w01, w11, 2); EDGE_Q8_ROW(7, w01, w11, 3);
#undef EDGE_Q8_ROW
            w += 64;
            src += 2 * plane_bytes;
        }
        if (k < blocks) {  // odd block count: the last block alone
            const int8x16_t x0 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src), flip));
            const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16);
#define EDGE_Q8_ROW(r, wk, lane) do { \
                const int8x16_t b0 = EDGE_Q8_BROADCAST(wk, lane); \
                lo[r] = vpadalq_s16(lo[r], vmull_s8(vget_low_s8(x0), vget_low_s8(b0))); \
                hi[r] = vpadalq_s16(hi[r], vmull_high_s8(x0, b0)); \
            } while (0)
            EDGE_Q8_ROW(0, w0, 0); EDGE_Q8_ROW(1, w0, 1); EDGE_Q8_ROW(2, w0, 2); EDGE_Q8_ROW(3, w0, 3);
            EDGE_Q8_ROW(4, w1, 0); EDGE_Q8_ROW(5, w1, 1); EDGE_Q8_ROW(6, w1, 2); EDGE_Q8_ROW(7, w1, 3);
#undef EDGE_Q8_ROW
        }
        const float32x4_t s = vld1q_f32(scales + off);
        const int32x4_t z = vsubq_s32(vld1q_s32(zeros + off), vdupq_n_s32(128));
        for (int r = 0; r < 8; r++) {
            const int32x4_t d = vsubq_s32(vpaddq_s32(lo[r], hi[r]), vmulq_n_s32(z, sums[t * 8 + r]));
            f[r] = vfmaq_f32(f[r], vcvtq_f32_s32(d), s);
        }
    }
    for (int r = 0; r < 8; r++) vst1q_f32(out + r * 16 + first, f[r]);
}
#undef EDGE_Q8_BROADCAST

void edge_q8conv_8x16_neonmlal(const int8_t *a, const int32_t *sums, const uint8_t *b, long plane_bytes, long blocks,
                               const int32_t *offsets, long taps, const float *scales, const int32_t *zeros, float *out) {
    for (long first = 0; first < 16; first += 4)
        edge_q8conv_8x16_neonmlal_quarter(a, sums, b, plane_bytes, blocks, offsets, taps, scales, zeros, out, first);
}

#else

void edge_q8conv_8x16_neonmlal(const int8_t *a, const int32_t *sums, const uint8_t *b, long plane_bytes, long blocks,
                               const int32_t *offsets, long taps, const float *scales, const int32_t *zeros, float *out) {
    (void)a; (void)sums; (void)b; (void)plane_bytes; (void)blocks; (void)offsets; (void)taps; (void)scales; (void)zeros; (void)out;
    __builtin_trap();  // callers check that they run on aarch64 first (Q8TileKernel.isSupported)
}

#endif
