// The calling CPU's number on hosted builds (host tests): by default each thread gets
// the next number the first time it asks; an installed numbering (CPU.install: one
// CPU, or a function) takes over. Bare-metal kernels read theirs inline
// (KernelSyncAtomics.h), so nothing is defined here for them.
#include "KernelSyncAtomics.h"

#if defined(__linux__) || defined(__APPLE__)
// Numbers stay below 2^31 (they wrap there, after 2^31 threads), so a lock word, which
// holds the number + 1, never reads as free while held.
#define KS_NO_CPU 0xFFFFFFFFu
_Thread_local uint32_t ks_thread_number __attribute__((tls_model("initial-exec"))) = KS_NO_CPU;
static uint32_t threads_seen;

unsigned ks_thread_cpu(void) {
  if (ks_thread_number == KS_NO_CPU) ks_thread_number = __atomic_fetch_add(&threads_seen, 1, __ATOMIC_RELAXED) & 0x7FFFFFFFu;
  return ks_thread_number;
}

unsigned ks_current_cpu(void) {
  if (__builtin_expect(ks_cpu_numbering.kind != KS_CPU_THREADS, 0)) return ks_current_cpu_slow();
  return ks_thread_cpu();
}

void ks_bind_cpu(unsigned cpu) { ks_thread_number = cpu & 0x7FFFFFFFu; }
#endif
