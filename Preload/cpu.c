// The calling thread's CPU number for the preload library, in place of
// Sources/KernelSyncAtomics/cpu.c (whose numbers count threads: see docs/preload.md,
// "Thread numbers"). The number is the thread's kernel thread id:
//  - unique among the process's live threads, which the allocator locks rely on (a lock
//    word holds its holder's number + 1, and a holder taking it again is refused as a
//    re-entry): the kernel hands an id out again only after its thread is gone;
//  - valid for every call the thread makes, up to its last free in glibc's thread exit
//    (no exit hook that could run too early);
//  - below pid_max (at most 2^22), so number + 1 never wraps to 0 (a free lock word);
//  - per-CPU slot = number mod CPU.maximum: threads created one after another get
//    consecutive ids, so a few threads mostly land in different slots; threads that
//    share a slot take turns at its locks.
// After a fork the child's thread keeps its parent's id until the shim's child handler
// has released the fork locks (taken under that number) and calls ks_forget_cpu.
#define _GNU_SOURCE
#include <unistd.h>

#include "KernelSyncAtomics.h"

// UINT32_MAX until the thread first asks (the header's inline read then declines).
_Thread_local uint32_t ks_thread_number __attribute__((tls_model("initial-exec"))) = UINT32_MAX;

unsigned ks_current_cpu(void) {
  if (__builtin_expect(ks_thread_number == UINT32_MAX, 0)) ks_thread_number = (uint32_t)gettid();
  return ks_thread_number;
}

void ks_bind_cpu(unsigned cpu) { ks_thread_number = cpu; }

/// The calling thread asks the kernel again on its next call (a forked child).
void ks_forget_cpu(void) { ks_thread_number = UINT32_MAX; }
