// Run-time translation: the barriers and TLB invalidations VirtualMemory's address
// spaces ask for (Arm ARM D8.13), and the switch from the early identity map (mmu.c)
// to the kernel map built in Swift. Every core's TLB is reached with the inner
// shareable (IS) forms, so one core's change is complete on all of them.
#include "ArchSupport.h"

#ifdef ARCH_AARCH64

// What a core started later turns its MMU on with (0: the early map). Written by the
// boot core, cleaned to memory: a started core reads it with its MMU off.
uint64_t arch_kernel_ttbr0;

void arch_vm_order_table_writes(void) { __asm__ volatile("dmb ishst" ::: "memory"); }
void arch_vm_publish(void) { __asm__ volatile("dsb ish\n isb" ::: "memory"); }
void arch_vm_before_invalidation(void) { __asm__ volatile("dsb ishst" ::: "memory"); }
void arch_vm_invalidate_page(uintptr_t address) {
  // TLBI VAE1IS takes VA[55:12] in bits 43:0, ASID 0 in bits 63:48.
  __asm__ volatile("tlbi vae1is, %0" : : "r"((uint64_t)(address >> 12) & 0xfffffffffffull) : "memory");
}
void arch_vm_invalidate_all(void) { __asm__ volatile("tlbi vmalle1is" ::: "memory"); }
void arch_vm_complete_invalidation(void) { __asm__ volatile("dsb ish\n isb" ::: "memory"); }

void arch_mmu_switch(uintptr_t root) {
  arch_kernel_ttbr0 = root;
  arch_cache_clean(&arch_kernel_ttbr0, sizeof arch_kernel_ttbr0);
  // Both maps are the identity for the code running here, and both walk the same way
  // (mmu.c: TCR and MAIR as here), but they map the same addresses with different block
  // sizes and permissions, all global: with the MMU on, entries of both could meet in a
  // TLB (a TLB conflict abort on hardware). So, in one block with no load or store: the
  // MMU off (fetches go on at the same addresses), the new root, every TLB emptied, the
  // MMU on again. The other cores are not running the kernel yet.
  uint64_t sctlr;
  __asm__ volatile(
      "dsb ish\n"
      "mrs %0, sctlr_el1\n"
      "bic x9, %0, #1\n"
      "msr sctlr_el1, x9\n"
      "isb\n"
      "msr ttbr0_el1, %1\n"
      "isb\n"
      "tlbi vmalle1is\n"
      "dsb ish\n"
      "isb\n"
      "msr sctlr_el1, %0\n"
      "isb\n"
      : "=&r"(sctlr)
      : "r"((uint64_t)root)
      : "x9", "memory");
}

#endif
