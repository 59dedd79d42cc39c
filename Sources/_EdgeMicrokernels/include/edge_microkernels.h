#ifndef EDGE_MICROKERNELS_H
#define EDGE_MICROKERNELS_H

#include <stdint.h>

// int8 convolution tile kernels that need an instruction Swift cannot emit (x86 VNNI `vpdpbusd`, ARM
// `sdot`) or a sequence it does not find (ARM `smull`/`smlal`/`sadalp`). Each is the bit-exact twin of
// q8ConvTile8x16SIMD in Sources/_EdgeKernels/Q8Conv_8x16_SIMD16.swift, which documents the contract; the
// callers check the matching edge_cpu_has_* (or, for NEONMLAL, that they run on aarch64) first.

/// 1 when the CPU and OS support AVX-512F/BW and AVX512-VNNI (x86-64 only; 0 elsewhere).
int edge_cpu_has_avx512vnni(void);

/// 1 when the CPU supports the ARMv8.2 dot product instructions (aarch64 Linux, from AT_HWCAP; 0 elsewhere).
int edge_cpu_has_dotprod(void);

/// Q8Conv_8x16_AVX512VNNI: 8 output channels x 16 positions. Reads, per tap t and channel block, 64 bytes at
/// b + 4*offsets[t] + block*plane_bytes and 32 bytes of a; 16 scales and zeros from offsets[t]; writes out[8][16].
void edge_q8conv_8x16_avx512vnni(const int8_t *a, const int32_t *sums, const uint8_t *b, long plane_bytes, long blocks,
                                 const int32_t *offsets, long taps, const float *scales, const int32_t *zeros, float *out);

/// Q8Conv_8x16_NEONDOT: the same tile and contract with `sdot` (activations are flipped to signed by XOR 0x80 on
/// load and the zero point moved by 128, which leaves every integer sum unchanged).
void edge_q8conv_8x16_neondot(const int8_t *a, const int32_t *sums, const uint8_t *b, long plane_bytes, long blocks,
                              const int32_t *offsets, long taps, const float *scales, const int32_t *zeros, float *out);

/// Q8Conv_8x16_NEONMLAL: the same tile and contract on any aarch64 CPU (ARMv8.0, no dot product: Cortex-A72 of the
/// Pi 4, A53), with widening multiplies: `smull` + `smlal` of two channel blocks into int16 (exact, as weights are
/// never -128), `sadalp` into int32; activations flipped and the zero point moved as in NEONDOT. Traps elsewhere.
void edge_q8conv_8x16_neonmlal(const int8_t *a, const int32_t *sums, const uint8_t *b, long plane_bytes, long blocks,
                               const int32_t *offsets, long taps, const float *scales, const int32_t *zeros, float *out);

#endif
