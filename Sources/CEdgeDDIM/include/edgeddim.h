/*
 * edgeddim.h — the C API of edge-ddim (libedgeddim.so): diffusers diffusion checkpoints, converted once, run on
 * a CPU; the images equal the `edge-ddim` command's (and diffusers') for the same seed.
 *
 *     edgeddim_model *model = NULL;
 *     if (edgeddim_model_open("models/ddpm-fashion-32.edm", &model) != EDGEDDIM_OK) {
 *         fprintf(stderr, "%s\n", edgeddim_last_error());
 *         return 1;
 *     }
 *     edgeddim_options options;
 *     edgeddim_options_init(&options);            // diffusers' defaults: DDIM, 10 steps, eta 0, seed 0
 *     options.count = 2;
 *     size_t bytes; int channels, height, width;
 *     edgeddim_output_size(model, &options, &bytes, &channels, &height, &width);
 *     uint8_t *pixels = malloc(bytes);               // count images, each height x width x channels
 *     edgeddim_generate(model, &options, pixels, bytes);
 *     edgeddim_write_png("samples.png", pixels, options.count, channels, height, width);
 *     edgeddim_model_close(model);
 *
 * Conventions:
 *  - Every function that can fail returns an edgeddim_status; EDGEDDIM_OK is 0. After a failure,
 *    edgeddim_last_error() gives a one-line message for the calling thread (valid until its next call).
 *  - Handles are opaque. A closed handle, or a pointer that never was one, is refused with
 *    EDGEDDIM_ERROR_CLOSED_HANDLE: handles are looked up, never dereferenced, and never reused.
 *  - Buffers belong to the caller; nothing the library returns needs freeing except what *_open / *_new made.
 *  - Thread safety: a model may be shared by any number of threads, each calling edgeddim_generate at once
 *    (each call has its own working memory). A cancel token may be requested from any thread.
 *  - Versioning: EDGEDDIM_API_VERSION changes when a declaration here changes incompatibly;
 *    edgeddim_api_version() is the library's. edgeddim_options begins with its own size, so a program built
 *    against this header keeps working with a later library.
 */
#ifndef EDGEDDIM_H
#define EDGEDDIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEDDIM_API_VERSION 1

/* Status codes. */
enum {
    EDGEDDIM_OK = 0,
    /* A null pointer where one is needed, or an option out of range (the message names it). */
    EDGEDDIM_ERROR_INVALID_ARGUMENT = 1,
    /* The model file is missing, unreadable, not an edge-ddim model, or cannot run these options. */
    EDGEDDIM_ERROR_MODEL = 2,
    /* The handle was closed (or freed), or was never one this library made. */
    EDGEDDIM_ERROR_CLOSED_HANDLE = 3,
    /* The caller's buffer is smaller than edgeddim_output_size's bytes; nothing was written. */
    EDGEDDIM_ERROR_BUFFER_TOO_SMALL = 4,
    /* The cancel token was requested, or the progress callback returned non-zero; nothing was written. */
    EDGEDDIM_ERROR_CANCELLED = 5,
    /* Writing a file failed. */
    EDGEDDIM_ERROR_IO = 6,
    /* The run needs more memory than the machine has (checked before anything large is allocated). */
    EDGEDDIM_ERROR_OUT_OF_MEMORY = 7
};
typedef int32_t edgeddim_status;

/* An opened model file (what `convert` writes). */
typedef struct edgeddim_model edgeddim_model;
/* A flag another thread can raise to stop a running edgeddim_generate before its next UNet evaluation. */
typedef struct edgeddim_cancel edgeddim_cancel;

/* Called after each UNet evaluation, on the generating thread: `done` of `total` evaluations.
 * Return 0 to go on, anything else to stop (edgeddim_generate then returns EDGEDDIM_ERROR_CANCELLED). */
typedef int (*edgeddim_progress_fn)(int32_t done, int32_t total, void *user_data);

typedef struct edgeddim_options {
    /* sizeof(edgeddim_options) as the caller was built; set by edgeddim_options_init. */
    size_t struct_size;
    /* Denoising steps (UNet evaluations for DDIM), 1 to the model's num_train_timesteps. Default 10. */
    int32_t steps;
    /* Images to generate, 1 to 4096. Default 1. */
    int32_t count;
    /* The seed of torch.Generator().manual_seed(seed) that diffusers' pipeline would be given. Default 0. */
    uint64_t seed;
    /* A sampler name as `edge-ddim --sampler` takes it (ddim, ddpm, pndm, dpmpp-2m, unipc, euler, ...);
     * NULL means "ddim". */
    const char *sampler;
    /* DDIM's eta in [0, 1]. Default 0 (deterministic). */
    float eta;
    /* Threads; 0 means OMP_NUM_THREADS, else every online core. The images do not depend on it. */
    int32_t threads;
    /* Images per UNet evaluation; 0 means min(count, 4). Memory versus speed; the images do not depend on it. */
    int32_t batch;
    /* Text-to-image models only: the prompt (UTF-8), the negative prompt (NULL: empty) and the
     * classifier-free guidance scale (default 7.5; 1 or less runs the prompt alone). */
    const char *prompt;
    const char *negative_prompt;
    float guidance;
    /* Text-to-image models only: the square image side in pixels; 0 means the model's. */
    int32_t size;
    /* Optional: progress callback and its user data, and a cancel token (NULL for none). */
    edgeddim_progress_fn progress;
    void *progress_user_data;
    const edgeddim_cancel *cancel;
} edgeddim_options;

/* The library's release ("0.1.0") and API version (EDGEDDIM_API_VERSION when built). */
const char *edgeddim_version(void);
int32_t edgeddim_api_version(void);

/* The calling thread's message for its last failed call, one line; "" if none failed. */
const char *edgeddim_last_error(void);

/* Fills *options with the defaults above. */
void edgeddim_options_init(edgeddim_options *options);

/* Opens a model file and checks it whole (a truncated or corrupt file is refused here). */
edgeddim_status edgeddim_model_open(const char *path, edgeddim_model **model);
/* Closes a model; the handle is invalid afterwards. Closing while another thread generates with the model
 * is safe: that call finishes first with its own reference. */
edgeddim_status edgeddim_model_close(edgeddim_model *model);

/* What edgeddim_generate will write for these options: `bytes` = count x height x width x channels, and each
 * image's shape. Any output pointer may be NULL. Also validates the options. */
edgeddim_status edgeddim_output_size(const edgeddim_model *model, const edgeddim_options *options, size_t *bytes,
                                     int32_t *channels, int32_t *height, int32_t *width);

/* Generates options->count images into pixels: image after image, each height x width x channels bytes
 * (interleaved RGB, or gray), the 8-bit values diffusers' pipeline returns. Allocates its working memory at
 * the start and frees it before returning. */
edgeddim_status edgeddim_generate(const edgeddim_model *model, const edgeddim_options *options, uint8_t *pixels,
                                  size_t capacity);

/* Writes `count` images (as edgeddim_generate wrote them) as one PNG grid, byte for byte the file the
 * `edge-ddim` command writes for the same images. The file is replaced atomically. */
edgeddim_status edgeddim_write_png(const char *path, const uint8_t *pixels, int32_t count, int32_t channels,
                                   int32_t height, int32_t width);

/* Cancel tokens: made by edgeddim_cancel_new, raised by edgeddim_cancel_request (any thread), freed by
 * edgeddim_cancel_free. A raised token stays raised. */
edgeddim_status edgeddim_cancel_new(edgeddim_cancel **cancel);
edgeddim_status edgeddim_cancel_request(const edgeddim_cancel *cancel);
edgeddim_status edgeddim_cancel_free(edgeddim_cancel *cancel);

#ifdef __cplusplus
}
#endif

#endif /* EDGEDDIM_H */
