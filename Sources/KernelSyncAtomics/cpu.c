// The calling CPU's number on hosted builds (host tests, the preload library): each
// thread gets the next number the first time it asks. Bare-metal kernels get theirs
// from the architecture code (TPIDR_EL1), so nothing is defined here for them.
#include "KernelSyncAtomics.h"

#if defined(__linux__) || defined(__APPLE__)
static _Thread_local int thread_cpu = -1;
static uint32_t threads_seen;

unsigned ks_current_cpu(void) {
  if (thread_cpu < 0) thread_cpu = (int)__atomic_fetch_add(&threads_seen, 1, __ATOMIC_RELAXED);
  return (unsigned)thread_cpu;
}

void ks_bind_cpu(unsigned cpu) { thread_cpu = (int)cpu; }
#endif
