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

static _Thread_local int thread_cpu = -1;

unsigned ks_current_cpu(void) {
  if (__builtin_expect(thread_cpu < 0, 0)) thread_cpu = (int)gettid();
  return (unsigned)thread_cpu;
}

void ks_bind_cpu(unsigned cpu) { thread_cpu = (int)cpu; }

/// The calling thread asks the kernel again on its next call (a forked child).
void ks_forget_cpu(void) { thread_cpu = -1; }
