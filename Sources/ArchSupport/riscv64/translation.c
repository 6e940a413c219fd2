// VirtualMemory's TranslationMaintenance on RISC-V: fences for the table writes, and
// SFENCE.VMA for this hart plus the SBI's remote SFENCE.VMA for the others once any
// was started (RISC-V has no broadcast TLB invalidation; the firmware sends the IPIs).
// A change's page invalidations (at most AddressSpace.invalidationBatch) are fenced on
// this hart at once and gathered into one range, which completeInvalidation sends to
// the other harts in one remote fence: one round of IPIs per change.
#include <ArchPerCPU.h>

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

// A new valid entry, fenced on this hart only: another hart that kept the old invalid
// entry takes a page fault there once, which the trap handler retries after a local
// fence (exception.c), instead of every map costing a round of IPIs.
void arch_vm_publish(void) {
  __asm__ volatile("fence rw, rw\n sfence.vma" : : : "memory");
}

void arch_vm_before_invalidation(void) { __asm__ volatile("fence rw, rw" : : : "memory"); }

// Per hart: the pages invalidated since the last completeInvalidation, as [start, end).
static struct {
  uintptr_t start, end;
} pending[ARCH_MAX_CPUS];

static unsigned this_cpu(void) {
  return *arch_per_cpu_block() % ARCH_MAX_CPUS;  // the block's first word: the CPU's number
}

void arch_vm_invalidate_page(uintptr_t address) {
  __asm__ volatile("sfence.vma %0, zero" : : "r"(address) : "memory");
  uintptr_t page = address & ~(PAGE_BYTES - 1);
  unsigned cpu = this_cpu();
  if (pending[cpu].end == 0) {
    pending[cpu].start = page;
    pending[cpu].end = page + PAGE_BYTES;
  } else {
    if (page < pending[cpu].start) pending[cpu].start = page;
    if (page + PAGE_BYTES > pending[cpu].end) pending[cpu].end = page + PAGE_BYTES;
  }
}

void arch_vm_invalidate_all(void) {
  __asm__ volatile("sfence.vma" : : : "memory");
  pending[this_cpu()].end = 0;
  remote_fence(0, (uintptr_t)-1);
}

void arch_vm_complete_invalidation(void) {
  __asm__ volatile("fence rw, rw" : : : "memory");
  unsigned cpu = this_cpu();
  if (pending[cpu].end == 0) return;
  remote_fence(pending[cpu].start, pending[cpu].end - pending[cpu].start);
  pending[cpu].end = 0;
}

#endif
