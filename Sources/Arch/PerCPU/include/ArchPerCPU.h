// The two CPU instructions the portable locks and allocators inline into their fast
// paths, one definition per architecture: reading the per-CPU register, and the
// spin-wait hint. KernelSyncAtomics (and through it KernelSync, the page frames and the
// heap) uses these and nothing else of the architecture. Header only.
#ifndef ARCH_PER_CPU_H
#define ARCH_PER_CPU_H

#include <stdint.h>

#define ARCH_PER_CPU_INLINE static inline __attribute__((always_inline))

#if !defined(__linux__) && !defined(__APPLE__)
/// The calling CPU's per-CPU block: the address the kernel keeps in the architecture's
/// per-CPU register (AArch64: TPIDR_EL1; RISC-V: `tp`, which nothing else uses in the
/// kernel). Its first 32-bit word is the CPU's number.
ARCH_PER_CPU_INLINE const uint32_t *arch_per_cpu_block(void) {
#if defined(__aarch64__)
  return (const uint32_t *)__builtin_arm_rsr64("tpidr_el1");
#elif defined(__riscv)
  const uint32_t *block;
  __asm__("mv %0, tp" : "=r"(block));
  return block;
#else
#error "arch_per_cpu_block: no per-CPU register for this bare-metal architecture"
#endif
}
#endif

/// The CPU's hint inside a spin-wait loop: AArch64 `yield` (not `wfe`, which waits for an
/// event a release store does not send), x86 `pause`, RISC-V Zihintpause's PAUSE (a
/// FENCE hint: a no-op on harts without the extension).
ARCH_PER_CPU_INLINE void arch_spin_hint(void) {
#if defined(__aarch64__)
  __asm__ volatile("yield" ::: "memory");
#elif defined(__x86_64__)
  __asm__ volatile("pause" ::: "memory");
#elif defined(__riscv)
  __asm__ volatile(".insn i 0x0F, 0, x0, x0, 0x010" ::: "memory");
#endif
}

#endif
