// See MallocCounter.h.
#define _GNU_SOURCE
#include "MallocCounter.h"
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <dlfcn.h>
#include <string.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

static atomic_int counting;
static atomic_long allocations, blasAllocations, dnnlAllocations;

/// `caller`: the return address of the malloc call, to tell OpenBLAS's and oneDNN's own allocations apart.
static void note(void *caller) {
    if (!atomic_load_explicit(&counting, memory_order_relaxed)) return;
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    Dl_info info;
    if (!dladdr(caller, &info) || !info.dli_fname) return;
    if (strstr(info.dli_fname, "openblas")) atomic_fetch_add_explicit(&blasAllocations, 1, memory_order_relaxed);
    else if (strstr(info.dli_fname, "libdnnl")) atomic_fetch_add_explicit(&dnnlAllocations, 1, memory_order_relaxed);
}

void MallocCounter_counting(int on) {
    if (on) { atomic_store(&allocations, 0); atomic_store(&blasAllocations, 0); atomic_store(&dnnlAllocations, 0); }
    atomic_store(&counting, on);
}
long MallocCounter_count(void) { return atomic_load(&allocations); }
long MallocCounter_count_openblas(void) { return atomic_load(&blasAllocations); }
long MallocCounter_count_dnnl(void) { return atomic_load(&dnnlAllocations); }

#define NOTE() note(__builtin_return_address(0))
void *malloc(size_t size) { NOTE(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { NOTE(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { NOTE(); return __libc_realloc(pointer, size); }
void free(void *pointer) { __libc_free(pointer); }
void *memalign(size_t alignment, size_t size) { NOTE(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { NOTE(); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    NOTE();
    void *pointer = __libc_memalign(alignment, size);
    if (!pointer) return ENOMEM;
    *out = pointer;
    return 0;
}
