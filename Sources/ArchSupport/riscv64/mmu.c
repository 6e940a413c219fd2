// The early Sv39 identity map with 1 GiB pages, until the kernel map built in Swift
// replaces it (translation.c): the first 2 GiB (the virt board's devices and PCIe
// windows) read-write, RAM from 2 GiB to 256 GiB read-write-execute. Sv39 has no
// memory types: the board's physical memory attributes make devices uncached.
#include "ArchSupport.h"

#ifdef ARCH_RISCV64

#define ENTRIES 512
#define GIB (1ull << 30)

// Sv39 page table entry bits (the privileged spec, "Sv39: Page-Based 39-bit Virtual-Memory System").
#define PTE_V (1ull << 0)
#define PTE_R (1ull << 1)
#define PTE_W (1ull << 2)
#define PTE_X (1ull << 3)
#define PTE_G (1ull << 5)
#define PTE_A (1ull << 6)
#define PTE_D (1ull << 7)
#define PTE_PPN_SHIFT 10
#define SATP_MODE_SV39 (8ull << 60)
#define RAM_START_GIB 2
#define EARLY_MAP_GIB 256

static uint64_t root[ENTRIES] __attribute__((aligned(4096)));

/// The satp value every hart runs with (the early map's, then the kernel map's): a
/// started hart loads it with its MMU off (boot.S).
uint64_t arch_satp;

static uint64_t satp_for(uintptr_t table) { return SATP_MODE_SV39 | (table >> 12); }

static void install(uint64_t satp) {
  __asm__ volatile("sfence.vma\n csrw satp, %0\n sfence.vma" : : "r"(satp) : "memory");
}

void arch_mmu_enable(void) {
  for (uint64_t gib = 0; gib < EARLY_MAP_GIB; gib++) {
    uint64_t bits = PTE_V | PTE_R | PTE_W | PTE_A | PTE_D | PTE_G;
    if (gib >= RAM_START_GIB) bits |= PTE_X;
    root[gib] = (gib * GIB) >> 12 << PTE_PPN_SHIFT | bits;
  }
  arch_satp = satp_for((uintptr_t)root);
  install(arch_satp);
}

void arch_mmu_switch(uintptr_t table) {
  uint64_t satp = satp_for(table);
  __atomic_store_n(&arch_satp, satp, __ATOMIC_RELEASE);
  install(satp);
}

#endif
