/*
 * insn_count.c — a qemu-user TCG plugin that counts the guest's executed AArch64 instructions by class.
 *
 *   qemu-aarch64 -plugin ./libinsn_count.so,out=counts.json PROGRAM ARGS...
 *
 * Each class is counted with one inline add per translated block and class, so the count is exact for a
 * single-threaded guest (qemu's inline adds are not atomic: run the guest with one thread) and costs little
 * more than running without the plugin. Classes, decided once per instruction at translation from its
 * encoding (Arm ARM, "A64 instruction set encoding"):
 *
 *   dot          SDOT/UDOT/USDOT/SUDOT (vector and by element), SMMLA/UMMLA/USMMLA, BFDOT/BFMMLA/BFMLAL
 *   simd_mac     SIMD/FP multiply-accumulate: FMLA/FMLS (vector, by element, fp16 or fp32/64), MLA/MLS,
 *                SMLAL/UMLAL/SMLSL/UMLSL (and the 2 forms), SADALP/UADALP, FMADD/FMSUB/FNMADD/FNMSUB
 *   simd_other   every other SIMD and floating-point data-processing instruction (op0 = x111)
 *   load_store   every load and store, scalar or SIMD (op0 = x1x0)
 *   branch       branches, exceptions and system instructions (op0 = 101x)
 *   other        the rest: integer data processing (op0 = x101, 100x)
 *
 * The JSON written at exit: {"total": N, "dot": N, "simd_mac": N, ...}. With symbols=FILE, it also writes
 * FILE: "instructions<TAB>symbol" per guest function (the symbol of each translated block's first
 * instruction, from the main executable's symbol table), most first, for finding where the count goes
 * (mangled Swift names: pipe through `swift demangle`).
 *
 * Written against qemu's plugin API version 1 (qemu 7.x, Debian 12's qemu-user); qemu's own header is not
 * packaged there, so the few declarations used are restated below, as that header defines them.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- qemu plugin API, version 1 (include/qemu/qemu-plugin.h) ---- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t {
    const char *target_name;
    struct { int min; int cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;
/* ---- end of the API ---- */

enum insn_class { CLASS_DOT, CLASS_SIMD_MAC, CLASS_SIMD_OTHER, CLASS_LOAD_STORE, CLASS_BRANCH, CLASS_OTHER, CLASS_COUNT };
static const char *const class_names[CLASS_COUNT] = {"dot", "simd_mac", "simd_other", "load_store", "branch", "other"};

/* One counter per class, bumped by the inline adds: the guest runs single-threaded (see above). */
static uint64_t counts[CLASS_COUNT];
static const char *output_path = "insn_count.json";

/* symbols=FILE: one counter per guest function, in an open-addressing table keyed by the symbol's name
 * (qemu hands out one static string per symbol, so the pointer is the key). */
enum { SYMBOL_SLOTS = 1 << 16 };
static const char *symbols_path;
static const char *symbol_names[SYMBOL_SLOTS];
static uint64_t symbol_counts[SYMBOL_SLOTS];
static uint64_t *symbol_counter(const char *name) {
    if (!name) name = "?";
    size_t slot = ((uintptr_t)name >> 3) & (SYMBOL_SLOTS - 1);
    for (size_t probe = 0; probe < SYMBOL_SLOTS; probe++, slot = (slot + 1) & (SYMBOL_SLOTS - 1)) {
        if (symbol_names[slot] == name) return &symbol_counts[slot];
        if (!symbol_names[slot]) { symbol_names[slot] = name; return &symbol_counts[slot]; }
    }
    return NULL;  /* more than 65,536 functions: the rest go uncounted in FILE (the class counts stay exact) */
}

/* Encodings as (mask, value): a word w is that instruction when (w & mask) == value. Bits left out of a mask
 * are the register numbers, Q (64- or 128-bit vector), the element size or index, and where two instructions
 * share a class, the bit that tells them apart (U: signed or unsigned; o2: add or subtract). */
struct encoding { uint32_t mask, value; enum insn_class class; const char *what; };
static const struct encoding simd_encodings[] = {
    {0x9FE0FC00, 0x0E809400, CLASS_DOT, "SDOT/UDOT (vector)"},
    {0x9FC0F400, 0x0F80E000, CLASS_DOT, "SDOT/UDOT (by element)"},
    {0xBFE0FC00, 0x0E809C00, CLASS_DOT, "USDOT (vector)"},
    {0xBF00F400, 0x0F00F000, CLASS_DOT, "SUDOT/BFDOT/USDOT/BFMLALB/T (by element)"},
    {0xBFE0FC00, 0x2E40FC00, CLASS_DOT, "BFDOT (vector)"},
    {0xBFE0FC00, 0x2EC0FC00, CLASS_DOT, "BFMLALB/T (vector)"},
    {0xFFE0FC00, 0x6E40EC00, CLASS_DOT, "BFMMLA"},
    {0xFFE0FC00, 0x4E80A400, CLASS_DOT, "SMMLA"},
    {0xFFE0FC00, 0x6E80A400, CLASS_DOT, "UMMLA"},
    {0xFFE0FC00, 0x4E80AC00, CLASS_DOT, "USMMLA"},
    {0xBF20FC00, 0x0E20CC00, CLASS_SIMD_MAC, "FMLA/FMLS (vector, fp32/fp64)"},
    {0xBF60FC00, 0x0E400C00, CLASS_SIMD_MAC, "FMLA/FMLS (vector, fp16)"},
    {0xBF00B400, 0x0F001000, CLASS_SIMD_MAC, "FMLA/FMLS (by element)"},
    {0xFF00B400, 0x5F001000, CLASS_SIMD_MAC, "FMLA/FMLS (scalar, by element)"},
    {0xBF60FC00, 0x0E20EC00, CLASS_SIMD_MAC, "FMLAL/FMLSL (vector)"},
    {0xBF60FC00, 0x2E20CC00, CLASS_SIMD_MAC, "FMLAL2/FMLSL2 (vector)"},
    {0xBFC0B400, 0x0F800000, CLASS_SIMD_MAC, "FMLAL/FMLSL (by element)"},
    {0xBFC0B400, 0x2F808000, CLASS_SIMD_MAC, "FMLAL2/FMLSL2 (by element)"},
    {0x9F20FC00, 0x0E209400, CLASS_SIMD_MAC, "MLA/MLS (vector)"},
    {0xBF00B400, 0x2F000000, CLASS_SIMD_MAC, "MLA/MLS (by element)"},
    {0x9F20DC00, 0x0E208000, CLASS_SIMD_MAC, "SMLAL/UMLAL/SMLSL/UMLSL(2) (vector)"},
    {0x9F00B400, 0x0F002000, CLASS_SIMD_MAC, "SMLAL/UMLAL/SMLSL/UMLSL(2) (by element)"},
    {0x9F3FFC00, 0x0E206800, CLASS_SIMD_MAC, "SADALP/UADALP"},
    {0xFF000000, 0x1F000000, CLASS_SIMD_MAC, "FMADD/FMSUB/FNMADD/FNMSUB"},
};

static enum insn_class classify_simd(uint32_t w) {
    for (size_t k = 0; k < sizeof simd_encodings / sizeof simd_encodings[0]; k++)
        if ((w & simd_encodings[k].mask) == simd_encodings[k].value) return simd_encodings[k].class;
    return CLASS_SIMD_OTHER;
}

static enum insn_class classify(uint32_t i) {
    uint32_t op0 = (i >> 25) & 0xF;
    if ((op0 & 0x5) == 0x4) return CLASS_LOAD_STORE;       /* x1x0 */
    if ((op0 & 0x7) == 0x7) return classify_simd(i);       /* x111 */
    if ((op0 & 0xE) == 0xA) return CLASS_BRANCH;           /* 101x */
    return CLASS_OTHER;
}

#ifndef INSN_COUNT_CLASSIFY_MAIN
static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    uint64_t per_class[CLASS_COUNT] = {0};
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t k = 0; k < n; k++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, k);
        uint32_t word = 0;
        if (qemu_plugin_insn_size(insn) == 4) memcpy(&word, qemu_plugin_insn_data(insn), 4);
        per_class[classify(word)] += 1;
    }
    for (int c = 0; c < CLASS_COUNT; c++)
        if (per_class[c]) qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &counts[c], per_class[c]);
    if (symbols_path && n > 0) {
        uint64_t *counter = symbol_counter(qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0)));
        if (counter) qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, counter, n);
    }
}

static int by_count_descending(const void *a, const void *b) {
    uint64_t x = symbol_counts[*(const size_t *)a], y = symbol_counts[*(const size_t *)b];
    return x < y ? 1 : x > y ? -1 : 0;
}

static void write_symbols(void) {
    FILE *f = fopen(symbols_path, "w");
    if (!f) { fprintf(stderr, "insn_count: cannot write %s\n", symbols_path); return; }
    static size_t order[SYMBOL_SLOTS];
    size_t used = 0;
    for (size_t k = 0; k < SYMBOL_SLOTS; k++) if (symbol_names[k] && symbol_counts[k]) order[used++] = k;
    qsort(order, used, sizeof order[0], by_count_descending);
    for (size_t k = 0; k < used; k++) fprintf(f, "%" PRIu64 "\t%s\n", symbol_counts[order[k]], symbol_names[order[k]]);
    fclose(f);
}

static void on_guest_exit(qemu_plugin_id_t id, void *userdata) {
    (void)id; (void)userdata;
    FILE *f = fopen(output_path, "w");
    if (!f) { fprintf(stderr, "insn_count: cannot write %s\n", output_path); return; }
    uint64_t total = 0;
    for (int c = 0; c < CLASS_COUNT; c++) total += counts[c];
    fprintf(f, "{\"total\": %" PRIu64, total);
    for (int c = 0; c < CLASS_COUNT; c++) fprintf(f, ", \"%s\": %" PRIu64, class_names[c], counts[c]);
    fprintf(f, "}\n");
    fclose(f);
    if (symbols_path) write_symbols();
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    if (strcmp(info->target_name, "aarch64") != 0) { fprintf(stderr, "insn_count: aarch64 guests only\n"); return 1; }
    for (int k = 0; k < argc; k++) {
        if (strncmp(argv[k], "out=", 4) == 0) output_path = argv[k] + 4;
        else if (strncmp(argv[k], "symbols=", 8) == 0) symbols_path = argv[k] + 8;
        else { fprintf(stderr, "insn_count: unknown argument %s (out=FILE, symbols=FILE)\n", argv[k]); return 1; }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    return 0;
}

#else
/* A host program for checking the classes above against a disassembler: reads one hexadecimal instruction
 * word per line on stdin and prints "word class" (tools/arm64/insn-count/check_classes.sh). */
int main(void) {
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        uint32_t word = 0;
        if (sscanf(line, "%" SCNx32, &word) == 1) printf("%08" PRIx32 " %s\n", word, class_names[classify(word)]);
    }
    return 0;
}
#endif
