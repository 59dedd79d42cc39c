#ifndef EDGE_THREADS_H
#define EDGE_THREADS_H

/// A task body: called once per index, from any of the pool's threads.
typedef void (*edge_task_fn)(void *context, long index);

/// Runs fn(context, i) for i in [0, count) on `threads` OpenMP threads (static schedule), and returns when
/// all are done. threads <= 1 runs them in order on the calling thread.
void edge_parallel_for(long count, int threads, edge_task_fn fn, void *context);

/// OpenMP's default team size: OMP_NUM_THREADS when set, otherwise the online cores.
int edge_default_threads(void);

// Included here so that existing builds notice the new header: a clang module cache does not rescan an
// umbrella folder for new files, but does see this header change.
#include "edge_signals.h"

#endif
