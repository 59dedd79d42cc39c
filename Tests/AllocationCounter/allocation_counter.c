// Counts heap allocations for the test that proves sampling allocates nothing. Defining malloc and friends
// in the test executable interposes them for the whole process (the executable's definitions win symbol
// resolution); each forwards to glibc's own implementation (__libc_*) after bumping an atomic counter.
// Test-only: no engine target links this.
#include <stddef.h>
#include <errno.h>
#include "allocation_counter.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static unsigned long long allocations;

static void count(void) { __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED); }

unsigned long long edge_test_allocation_count(void) { return __atomic_load_n(&allocations, __ATOMIC_RELAXED); }

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define EDGE_SANITIZED 1
#endif
#endif

#ifdef EDGE_SANITIZED
// Under AddressSanitizer or ThreadSanitizer (tools/sanitize.sh) the sanitizer owns malloc: defining it here
// as well would hand the sanitizer's pointers to glibc's free. Its allocator calls these hooks instead.
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
static void on_malloc(const volatile void *p, size_t n) { (void)p; (void)n; count(); }
static void on_free(const volatile void *p) { (void)p; }
__attribute__((constructor)) static void install_hooks(void) { __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free); }
#else
void *malloc(size_t n) { count(); return __libc_malloc(n); }
void *calloc(size_t n, size_t m) { count(); return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { count(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t alignment, size_t n) { count(); return __libc_memalign(alignment, n); }
void *aligned_alloc(size_t alignment, size_t n) { count(); return __libc_memalign(alignment, n); }
int posix_memalign(void **out, size_t alignment, size_t n) {
    count();
    void *p = __libc_memalign(alignment, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
#endif
