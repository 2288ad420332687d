// MallocCounter: counts heap allocations (malloc, calloc, realloc, memalign and friends) of the whole process while
// switched on. Linked into the test binary only, where its definitions take the place of glibc's and forward to
// glibc's own (__libc_malloc ...).
#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H
void MallocCounter_counting(int on);
long MallocCounter_count(void);
/// Of those, the ones OpenBLAS made itself (its threaded GEMM driver mallocs a job array per call).
long MallocCounter_count_openblas(void);
#endif
