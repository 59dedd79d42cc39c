// The only C in the engine: OpenMP has no Swift spelling. Swift hands a task body and a context pointer;
// this file runs the parallel loop. The omp_* functions used are declared here rather than through
// omp.h, whose location differs between LLVM versions (Debian 12: llvm-14, trixie: llvm-19).
#include "edge_threads.h"

int omp_get_max_threads(void);
int omp_get_thread_num(void);
int omp_get_num_threads(void);

void edge_parallel_for(long count, int threads, edge_task_fn fn, void *context) {
    if (threads <= 1 || count <= 1) {
        for (long i = 0; i < count; i++) fn(context, i);
        return;
    }
    // A plain parallel region with the static split written out: libomp's worksharing `for` allocates
    // dispatch buffers on every region (measured: 4 mallocs each), a plain region reuses its hot team and
    // allocates nothing, which the sampling loop's zero-allocation test relies on.
#pragma omp parallel num_threads(threads)
    {
        long team = omp_get_num_threads(), me = omp_get_thread_num();
        long begin = count * me / team, end = count * (me + 1) / team;
        for (long i = begin; i < end; i++) fn(context, i);
    }
}

int edge_default_threads(void) { return omp_get_max_threads(); }
