// Generates images with libedgeddim from C, as `edge-ddim --model MODEL --seed SEED --count COUNT --output OUT`
// does (DDIM, 10 steps, eta 0), and writes the same PNG, byte for byte.
//
//   cc -I Sources/CEdgeDDIM/include tools/examples/c/generate.c -L .build/release -ledgeddim \
//      -Wl,-rpath,.build/release -o generate
//   ./generate models/ddpm-fashion-32.edm samples.png 3 2
#include <stdio.h>
#include <stdlib.h>
#include "edgeddim.h"

static int report(int32_t done, int32_t total, void *user_data) {
    (void)user_data;
    fprintf(stderr, "step %d/%d\n", done, total);
    return 0;  // non-zero would stop the run
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL OUTPUT.png SEED COUNT\n", argv[0]);
        return 2;
    }
    edgeddim_model *model = NULL;
    if (edgeddim_model_open(argv[1], &model) != EDGEDDIM_OK) {
        fprintf(stderr, "generate: %s\n", edgeddim_last_error());
        return 1;
    }
    edgeddim_options options;
    edgeddim_options_init(&options);
    options.seed = strtoull(argv[3], NULL, 10);
    options.count = atoi(argv[4]);
    options.progress = report;

    size_t bytes = 0;
    int32_t channels = 0, height = 0, width = 0;
    uint8_t *pixels = NULL;
    int status = edgeddim_output_size(model, &options, &bytes, &channels, &height, &width);
    if (status == EDGEDDIM_OK && (pixels = malloc(bytes)) == NULL) {
        fprintf(stderr, "generate: cannot allocate %zu bytes\n", bytes);
        status = EDGEDDIM_ERROR_OUT_OF_MEMORY;
    }
    if (status == EDGEDDIM_OK) status = edgeddim_generate(model, &options, pixels, bytes);
    if (status == EDGEDDIM_OK) status = edgeddim_write_png(argv[2], pixels, options.count, channels, height, width);
    if (status != EDGEDDIM_OK) fprintf(stderr, "generate: %s\n", edgeddim_last_error());
    free(pixels);
    edgeddim_model_close(model);
    return status == EDGEDDIM_OK ? 0 : 1;
}
