#ifndef ALLOCATION_COUNTER_H
#define ALLOCATION_COUNTER_H

/// Heap allocations (malloc, calloc, realloc, aligned allocations) made by this process so far, counted by
/// the interposed allocator in allocation_counter.c. Linked into the test binary only.
unsigned long long edge_test_allocation_count(void);


#endif
