// forms.s — one instruction per line with the class insn_count.c must give it (check_classes.sh assembles
// this, disassembles it and compares). Covers each encoding of the dot and multiply-accumulate classes and
// the near misses that must stay out of them (FMUL, MUL, SMULL, the saturating doubling forms, FCMLA).
.text
sdot v0.4s, v1.16b, v2.16b      // dot
udot v0.2s, v1.8b, v2.8b        // dot
sdot v0.4s, v1.16b, v2.4b[3]    // dot
udot v0.4s, v1.16b, v2.4b[1]    // dot
usdot v0.4s, v1.16b, v2.16b     // dot
usdot v0.4s, v1.16b, v2.4b[2]   // dot
sudot v0.4s, v1.16b, v2.4b[2]   // dot
smmla v0.4s, v1.16b, v2.16b     // dot
ummla v0.4s, v1.16b, v2.16b     // dot
usmmla v0.4s, v1.16b, v2.16b    // dot
bfdot v0.4s, v1.8h, v2.8h       // dot
bfdot v0.2s, v1.4h, v2.2h[1]    // dot
bfmmla v0.4s, v1.8h, v2.8h      // dot
bfmlalb v0.4s, v1.8h, v2.8h     // dot
bfmlalt v0.4s, v1.8h, v2.h[3]   // dot
fmla v0.4s, v1.4s, v2.4s        // simd_mac
fmls v0.2d, v1.2d, v2.2d        // simd_mac
fmla v0.8h, v1.8h, v2.8h        // simd_mac
fmls v0.4h, v1.4h, v2.4h        // simd_mac
fmla v0.4s, v1.4s, v2.s[3]      // simd_mac
fmls v0.2d, v1.2d, v2.d[1]      // simd_mac
fmla v0.8h, v1.8h, v2.h[7]      // simd_mac
fmla s0, s1, v2.s[1]            // simd_mac
fmls d0, d1, v2.d[1]            // simd_mac
fmlal v0.4s, v1.4h, v2.4h       // simd_mac
fmlsl2 v0.4s, v1.4h, v2.4h      // simd_mac
fmlal v0.4s, v1.4h, v2.h[5]     // simd_mac
fmlsl2 v0.4s, v1.4h, v2.h[5]    // simd_mac
mla v0.16b, v1.16b, v2.16b      // simd_mac
mls v0.4s, v1.4s, v2.4s         // simd_mac
mla v0.4s, v1.4s, v2.s[3]       // simd_mac
mls v0.8h, v1.8h, v2.h[7]       // simd_mac
smlal v0.8h, v1.8b, v2.8b       // simd_mac
smlal2 v0.8h, v1.16b, v2.16b    // simd_mac
umlal v0.4s, v1.4h, v2.4h       // simd_mac
smlsl2 v0.2d, v1.4s, v2.4s      // simd_mac
umlsl v0.4s, v1.4h, v2.4h       // simd_mac
smlal v0.4s, v1.4h, v2.h[7]     // simd_mac
umlal2 v0.2d, v1.4s, v2.s[3]    // simd_mac
smlsl v0.4s, v1.4h, v2.h[2]     // simd_mac
sadalp v0.4s, v1.8h             // simd_mac
uadalp v0.8h, v1.16b            // simd_mac
fmadd s0, s1, s2, s3            // simd_mac
fnmsub d0, d1, d2, d3           // simd_mac
fmadd h0, h1, h2, h3            // simd_mac
fmul v0.4s, v1.4s, v2.4s        // simd_other
fmul v0.4s, v1.4s, v2.s[1]      // simd_other
fmulx v0.4s, v1.4s, v2.s[1]     // simd_other
mul v0.4s, v1.4s, v2.4s         // simd_other
mul v0.4s, v1.4s, v2.s[1]       // simd_other
smull v0.8h, v1.8b, v2.8b       // simd_other
umull2 v0.4s, v1.8h, v2.8h      // simd_other
smull v0.4s, v1.4h, v2.h[1]     // simd_other
sqdmlal v0.4s, v1.4h, v2.4h     // simd_other
sqrdmlah v0.4s, v1.4s, v2.4s    // simd_other
saddlp v0.4s, v1.8h             // simd_other
fadd v0.4s, v1.4s, v2.4s        // simd_other
fmul s0, s1, s2                 // simd_other
fnmul d0, d1, d2                // simd_other
fcmla v0.4s, v1.4s, v2.4s, #90  // simd_other
add v0.4s, v1.4s, v2.4s         // simd_other
ld1 {v0.4s}, [x0], #16          // load_store
ldp q0, q1, [x0]                // load_store
str s0, [x1]                    // load_store
ldr x0, [x1]                    // load_store
prfm pldl1keep, [x0]            // load_store
b .                             // branch
cbz x0, .                       // branch
ret                             // branch
madd x0, x1, x2, x3             // other
add x0, x1, x2                  // other
