// MallocCounter: counts heap allocations (malloc, calloc, realloc, memalign and friends) of the whole process while
// switched on. Linked into the test binary only, where its definitions take the place of glibc's and forward to
// glibc's own (__libc_malloc ...).
#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H
void MallocCounter_counting(int on);
long MallocCounter_count(void);
/// Of those, the ones OpenBLAS made itself (its threaded GEMM driver mallocs a job array per call).
long MallocCounter_count_openblas(void);
/// Of those, the ones oneDNN made itself (its bf16 GEMM mallocs a packing buffer per call on each thread).
long MallocCounter_count_dnnl(void);
#endif
