// CAtomics: the two operations the shared-memory reduction needs on counters that several processes map, which
// Swift's own atomics do not offer on foreign memory: an acquire load and a release store of an int64 (and the CPU's
// spin-wait hint).
#ifndef CATOMICS_H
#define CATOMICS_H
#include <stdatomic.h>
#include <stdint.h>

static inline int64_t CAtomics_load_acquire(const int64_t *counter) {
    return atomic_load_explicit((const _Atomic int64_t *)counter, memory_order_acquire);
}

static inline void CAtomics_store_release(int64_t *counter, int64_t value) {
    atomic_store_explicit((_Atomic int64_t *)counter, value, memory_order_release);
}
static inline void CAtomics_pause(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
}
#endif
