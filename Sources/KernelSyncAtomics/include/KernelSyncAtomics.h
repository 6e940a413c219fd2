// The atomic operations the kernel's locks are built on, as compiler builtins (the
// CPU's exclusive or atomic instructions, acquire and release where asked), the same
// on the host. The two things only an architecture knows, the per-CPU register and the
// spin-wait hint, come from Arch/PerCPU (ArchPerCPU.h). Header only, for host and bare
// metal alike.
#ifndef KERNEL_SYNC_ATOMICS_H
#define KERNEL_SYNC_ATOMICS_H

#include <stdint.h>

#include <ArchPerCPU.h>

// Always inlined: the kernel builds pass -ffreestanding -fno-builtin to Swift's clang
// importer too, which marks these functions "no-builtins", and LLVM does not inline such
// a function into Swift code that lacks the mark unless told to. Without this every lock
// operation was a call (kmalloc+kfree: 293 guest instructions instead of 2xx).
#define KS_INLINE static inline __attribute__((always_inline))

/// Atomically adds 1 to `*word` and returns its old value (acquire and release).
KS_INLINE uint32_t ks_fetch_increment(uint32_t *word) {
  return __atomic_fetch_add(word, 1, __ATOMIC_ACQ_REL);
}

/// Sets `*word` to `desired` if it holds `expected` (acquire and release); whether it did.
KS_INLINE _Bool ks_compare_exchange(uint32_t *word, uint32_t expected, uint32_t desired) {
  return __atomic_compare_exchange_n(word, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/// Sets `*word` from 0 to `mine` (acquire): 0 when it did, else the value it held.
KS_INLINE uint32_t ks_try_acquire(uint32_t *word, uint32_t mine) {
  uint32_t expected = 0;
  if (__atomic_compare_exchange_n(word, &expected, mine, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return 0;
  return expected;
}

/// Loads `*word` with acquire ordering.
KS_INLINE uint32_t ks_load_acquire(const uint32_t *word) {
  return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

/// Stores `value` with release ordering.
KS_INLINE void ks_store_release(uint32_t *word, uint32_t value) {
  __atomic_store_n(word, value, __ATOMIC_RELEASE);
}

/// Loads and stores of a plain word that the compiler may not tear or elide (the debug
/// owner field: written only by the holder).
KS_INLINE uint32_t ks_load_relaxed(const uint32_t *word) {
  return __atomic_load_n(word, __ATOMIC_RELAXED);
}
KS_INLINE void ks_store_relaxed(uint32_t *word, uint32_t value) {
  __atomic_store_n(word, value, __ATOMIC_RELAXED);
}

#if defined(__linux__) || defined(__APPLE__)
#include <sched.h>
#endif

/// A hint while spinning: the CPU's spin-wait hint on bare metal (`arch_spin_hint`).
/// Hosted, where threads outnumber cores and a lock holder may be descheduled, the
/// thread gives up its time slice instead.
KS_INLINE void ks_spin_hint(void) {
#if defined(__linux__) || defined(__APPLE__)
  sched_yield();
#else
  arch_spin_hint();  // Arch/PerCPU
#endif
}

/// 64- and 32-bit relaxed loads and stores: plain LDR/STR, but visible as atomic to
/// the compiler and to ThreadSanitizer (page entries and counts read by one CPU while
/// another CPU changes them under a different lock).
KS_INLINE uint64_t ks_load_relaxed64(const uint64_t *word) {
  return __atomic_load_n(word, __ATOMIC_RELAXED);
}
KS_INLINE void ks_store_relaxed64(uint64_t *word, uint64_t value) {
  __atomic_store_n(word, value, __ATOMIC_RELAXED);
}
KS_INLINE uint32_t ks_load_relaxed32(const uint32_t *word) {
  return __atomic_load_n(word, __ATOMIC_RELAXED);
}
KS_INLINE void ks_store_relaxed32(uint32_t *word, uint32_t value) {
  __atomic_store_n(word, value, __ATOMIC_RELAXED);
}

/// Sets `*word` to `desired` if it holds `expected` (relaxed: the caller holds a lock
/// that orders everything else); whether it did.
KS_INLINE _Bool ks_compare_exchange64(uint64_t *word, uint64_t expected, uint64_t desired) {
  return __atomic_compare_exchange_n(word, &expected, desired, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

// MARK: The calling CPU's number

/// How `ks_current_cpu` finds the calling CPU's number: KernelSync's `CPU.install`
/// sets it, on the boot CPU, before other CPUs run.
enum {
  /// Nothing installed: one CPU (0), said once on the console (putchar).
  KS_CPU_UNSET = 0,
  /// One CPU, installed on purpose: always 0, nothing said.
  KS_CPU_SINGLE = 1,
  /// Bare metal: the architecture's per-CPU register (ArchPerCPU's arch_per_cpu_block)
  /// holds the address of a block whose first 32-bit word is the number.
  KS_CPU_REGISTER = 2,
  /// A function of the kernel's returns it (`function`).
  KS_CPU_FUNCTION = 3,
  /// Hosted builds' default: each thread its own number (cpu.c).
  KS_CPU_THREADS = 4,
};

/// A function that returns the calling CPU's number: no locks, no allocation, callable
/// with interrupts masked.
typedef uint32_t (*ks_cpu_number_function)(void);

/// The installed numbering (numbering.c). `limit`: numbers at or above it are refused
/// (said once, then read as `limit`, a number no real CPU has); at most 2^31, so a
/// lock word (number + 1) never reads as free. `register_limit` is `limit` when the kind
/// is `KS_CPU_REGISTER` and 0 otherwise: the inline path tests one word.
struct ks_cpu_numbering {
  uint32_t register_limit;
  uint32_t kind;
  uint32_t limit;
  ks_cpu_number_function function;
};
// Hidden: linked into the same image as every reader, so the inline path reaches it
// PC-relative, without a load through the GOT.
extern struct ks_cpu_numbering ks_cpu_numbering __attribute__((visibility("hidden")));

/// Every kind but the register's (numbering.c): the one-CPU cases and the function.
unsigned ks_current_cpu_slow(void);
/// A number at or above the limit (numbering.c): said once, answered with the limit.
unsigned ks_cpu_number_refused(unsigned number);

/// The calling CPU's number, 0 ..< `ks_cpu_numbering.limit`: unique among the CPUs (or
/// threads) running now, as the installed numbering gives it, range-checked.
/// Hosted (tests, the preload library): a function (cpu.c; Preload/cpu.c).
/// Bare metal: inline, so the usual kind (the per-CPU register) costs one load of the
/// numbering, the register read, the number's load and two branches; the others a call.
#if defined(__linux__) || defined(__APPLE__)
unsigned ks_current_cpu(void);
#else
/// The calling CPU's per-CPU block, from the architecture's per-CPU register: its first
/// word is the CPU's number (`KS_CPU_REGISTER`).
KS_INLINE const uint32_t *ks_cpu_block(void) { return arch_per_cpu_block(); }  // Arch/PerCPU

KS_INLINE unsigned ks_current_cpu(void) {
  uint32_t limit = ks_cpu_numbering.register_limit;
  if (__builtin_expect(limit != 0, 1)) {
    unsigned number = *ks_cpu_block();
    if (__builtin_expect(number < limit, 1)) return number;
    return ks_cpu_number_refused(number);
  }
  return ks_current_cpu_slow();
}
#endif

/// `ks_current_cpu` without its calls, for fast paths that must stay leaf functions:
/// the number when the per-CPU register's kind is installed and the number is in
/// range, otherwise `UINT32_MAX` (the caller then takes its general path, which calls
/// `ks_current_cpu` and so says what is wrong).
#if defined(__linux__) || defined(__APPLE__)
/// Hosted: the calling thread's number once it has one, `UINT32_MAX` before (cpu.c, or
/// Preload/cpu.c in the preload library, assigns and keeps it). Initial-exec TLS: one
/// load off the thread pointer, with no call to the TLS resolver.
extern _Thread_local uint32_t ks_thread_number __attribute__((tls_model("initial-exec")));

/// Hosted: the thread's number read inline while threads are the numbering (the
/// default); `UINT32_MAX` for a thread that has none yet or another numbering, whose
/// general path then calls `ks_current_cpu`.
KS_INLINE uint32_t ks_current_cpu_inline(void) {
  uint32_t number = ks_thread_number;
  return __builtin_expect(ks_cpu_numbering.kind == KS_CPU_THREADS, 1) ? number : UINT32_MAX;
}
#else
KS_INLINE uint32_t ks_current_cpu_inline(void) {
  uint32_t limit = ks_cpu_numbering.register_limit;
  if (__builtin_expect(limit == 0, 0)) return UINT32_MAX;
  uint32_t number = *ks_cpu_block();
  return __builtin_expect(number < limit, 1) ? number : UINT32_MAX;
}
#endif

/// The word KernelHeap's heap tags are counted in (serials.c): zero at start, changed
/// only with the atomics above.
uint32_t *ks_heap_tag_word(void);

/// Hosted only: the calling thread's number (what `KS_CPU_THREADS` gives), whatever
/// numbering is installed.
unsigned ks_thread_cpu(void);

/// Hosted only: makes the calling thread report `cpu` from now on (tests that want a
/// given per-CPU slot). Two live threads must not share a number.
void ks_bind_cpu(unsigned cpu);

#endif
