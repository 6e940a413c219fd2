// Run-time translation: the barriers and TLB invalidations VirtualMemory's address
// spaces ask for (Arm ARM D8.13), and the switch from the early identity map (mmu.c)
// to the kernel map built in Swift. Every core's TLB is reached with the inner
// shareable (IS) forms, so one core's change is complete on all of them.
#include "ArchSupport.h"

#ifdef ARCH_BARE_METAL

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
  // The early map walks the same way (mmu.c: TCR and MAIR as here) and both maps
  // translate the code and data in use to the same addresses, so the switch needs no
  // trampoline: the new root, then nothing of the old map left in any TLB.
  __asm__ volatile(
      "dsb ish\n"
      "msr ttbr0_el1, %0\n"
      "isb\n"
      "tlbi vmalle1is\n"
      "dsb ish\n"
      "isb\n"
      :
      : "r"((uint64_t)root)
      : "memory");
}

#endif
