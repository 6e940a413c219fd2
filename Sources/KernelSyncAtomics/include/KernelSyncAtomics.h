// The atomic operations the kernel's locks are built on, as compiler builtins: on
// AArch64 without LSE (Cortex-A53, A72) they compile to LDAXR/STLXR loops and LDAR/STLR,
// on the host to the host's atomics. Header only, for host and bare metal alike.
#ifndef KERNEL_SYNC_ATOMICS_H
#define KERNEL_SYNC_ATOMICS_H

#include <stdint.h>

/// Atomically adds 1 to `*word` and returns its old value (acquire and release).
static inline uint32_t ks_fetch_increment(uint32_t *word) {
  return __atomic_fetch_add(word, 1, __ATOMIC_ACQ_REL);
}

/// Sets `*word` to `desired` if it holds `expected` (acquire and release); whether it did.
static inline _Bool ks_compare_exchange(uint32_t *word, uint32_t expected, uint32_t desired) {
  return __atomic_compare_exchange_n(word, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/// Loads `*word` with acquire ordering.
static inline uint32_t ks_load_acquire(const uint32_t *word) {
  return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

/// Stores `value` with release ordering.
static inline void ks_store_release(uint32_t *word, uint32_t value) {
  __atomic_store_n(word, value, __ATOMIC_RELEASE);
}

/// Loads and stores of a plain word that the compiler may not tear or elide (the debug
/// owner field: written only by the holder).
static inline uint32_t ks_load_relaxed(const uint32_t *word) {
  return __atomic_load_n(word, __ATOMIC_RELAXED);
}
static inline void ks_store_relaxed(uint32_t *word, uint32_t value) {
  __atomic_store_n(word, value, __ATOMIC_RELAXED);
}

/// A hint while spinning: `yield` on AArch64 (not `wfe`, which waits for an event a
/// release store does not send), `pause` on x86.
static inline void ks_spin_hint(void) {
#if defined(__aarch64__)
  __asm__ volatile("yield" ::: "memory");
#elif defined(__x86_64__)
  __asm__ volatile("pause" ::: "memory");
#endif
}

#endif
