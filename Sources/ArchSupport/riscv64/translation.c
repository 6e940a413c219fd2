// VirtualMemory's TranslationMaintenance on RISC-V: fences for the table writes, and
// SFENCE.VMA for this hart plus the SBI's remote SFENCE.VMA for the others once any
// was started (RISC-V has no broadcast TLB invalidation; the firmware sends the IPIs).
#include "ArchSupport.h"
#include "sbi.h"

#ifdef ARCH_RISCV64

#define PAGE_BYTES 4096ul

// Other harts are started (smp.c): invalidations must reach them too.
extern int arch_harts_started;

static void remote_fence(uintptr_t start, uintptr_t size) {
  if (!__atomic_load_n(&arch_harts_started, __ATOMIC_ACQUIRE)) return;
  // hart_mask_base -1: every hart (the caller's fence is already done).
  sbi_call(SBI_EXT_RFENCE, SBI_RFENCE_SFENCE_VMA, 0, (unsigned long)-1, start, size);
}

void arch_vm_order_table_writes(void) { __asm__ volatile("fence rw, rw" : : : "memory"); }

// A new valid entry: a hart may have cached the invalid one (the spec allows it).
void arch_vm_publish(void) {
  __asm__ volatile("fence rw, rw\n sfence.vma" : : : "memory");
}

void arch_vm_before_invalidation(void) { __asm__ volatile("fence rw, rw" : : : "memory"); }

void arch_vm_invalidate_page(uintptr_t address) {
  __asm__ volatile("sfence.vma %0, zero" : : "r"(address) : "memory");
  remote_fence(address & ~(PAGE_BYTES - 1), PAGE_BYTES);
}

void arch_vm_invalidate_all(void) {
  __asm__ volatile("sfence.vma" : : : "memory");
  remote_fence(0, (uintptr_t)-1);
}

void arch_vm_complete_invalidation(void) { __asm__ volatile("fence rw, rw" : : : "memory"); }

#endif
