// The early identity map with 1 GiB and 2 MiB blocks, until the kernel map built in
// Swift replaces it (translation.c): RAM as Normal write-back memory, the board's
// peripherals as Device-nGnRE. With the MMU off every data access is
// Device memory, where unaligned accesses and `dc zva` fault.
#include "ArchSupport.h"

#ifdef ARCH_AARCH64

// This file runs before the MMU is on, when unaligned accesses fault: its functions are
// compiled with strict alignment. Everything else runs with the MMU on (Normal memory),
// where unaligned accesses are legal, and is compiled without it. Swift's clang importer
// receives the toolset's C flags, so a global -mstrict-align there would also split
// every Swift storeBytes into byte stores.
#pragma clang attribute push(__attribute__((target("strict-align"))), apply_to = function)

#define ENTRIES 512
#define GIB (1ull << 30)
#define MIB2 (1ull << 21)

#define DESC_BLOCK      0x1ull
#define DESC_TABLE      0x3ull
#define DESC_ATTR(i)    ((uint64_t)(i) << 2)
#define DESC_SH_INNER   (3ull << 8)
#define DESC_AF         (1ull << 10)
#define DESC_PXN        (1ull << 53)
#define DESC_UXN        (1ull << 54)

#define ATTR_NORMAL 0   // MAIR attr0
#define ATTR_DEVICE 1   // MAIR attr1
#define MAIR_VALUE  (0xffull | (0x04ull << 8))   // attr1 Device-nGnRE

#define TCR_T0SZ(n)     ((uint64_t)(n))
#define TCR_IRGN0_WBWA  (1ull << 8)
#define TCR_ORGN0_WBWA  (1ull << 10)
#define TCR_SH0_INNER   (3ull << 12)
#define TCR_TG0_4K      (0ull << 14)
#define TCR_EPD1        (1ull << 23)
#define TCR_IPS_40BIT   (2ull << 32)

#define SCTLR_M (1ull << 0)
#define SCTLR_C (1ull << 2)
#define SCTLR_I (1ull << 12)

static uint64_t level0[ENTRIES] __attribute__((aligned(4096)));
static uint64_t level1[ENTRIES] __attribute__((aligned(4096)));
static uint64_t level2[ENTRIES] __attribute__((aligned(4096)));

static uint64_t normal_block(uint64_t address) {
  return address | DESC_BLOCK | DESC_ATTR(ATTR_NORMAL) | DESC_SH_INNER | DESC_AF;
}

static uint64_t device_block(uint64_t address) {
  return address | DESC_BLOCK | DESC_ATTR(ATTR_DEVICE) | DESC_AF | DESC_PXN | DESC_UXN;
}

// A four-level walk (48-bit VAs, as the kernel map's): level 0's first entry covers
// [0, 512 GiB), the early map's whole range, so the switch to the kernel map changes
// TTBR0 only.
static void build_tables(void) {
  level0[0] = (uint64_t)(uintptr_t)level1 | DESC_TABLE;
#if defined(BOARD_VIRT)
  // [0, 1 GiB): flash, GIC, UART and other MMIO. [1 GiB, 512 GiB): RAM (up to -m 511G).
  level1[0] = device_block(0);
  for (uint64_t i = 1; i < ENTRIES; i++) level1[i] = normal_block(i * GIB);
#elif defined(BOARD_RASPI4B)
  // Raspberry Pi 4 (low-peripheral mode): RAM in [0, 3 GiB) and [3 GiB, 0xFC000000),
  // the peripherals and the local peripherals in [0xFC000000, 4 GiB).
  const uint64_t peripheral_base = 0xFC000000ull;
  for (uint64_t i = 0; i < 3; i++) level1[i] = normal_block(i * GIB);
  for (uint64_t i = 0; i < ENTRIES; i++) {
    uint64_t address = 3 * GIB + i * MIB2;
    level2[i] = address < peripheral_base ? normal_block(address) : device_block(address);
  }
  level1[3] = (uint64_t)(uintptr_t)level2 | DESC_TABLE;
#else
  // Raspberry Pi 3: RAM below 0x3F000000, peripherals up to 1 GiB, local peripherals above.
  const uint64_t peripheral_base = 0x3F000000ull;
  for (uint64_t i = 0; i < ENTRIES; i++) {
    uint64_t address = i * MIB2;
    level2[i] = address < peripheral_base ? normal_block(address) : device_block(address);
  }
  level1[0] = (uint64_t)(uintptr_t)level2 | DESC_TABLE;
  level1[1] = device_block(GIB);
#endif
}

#define TCR_VALUE (TCR_T0SZ(16) | TCR_IRGN0_WBWA | TCR_ORGN0_WBWA | TCR_SH0_INNER | TCR_TG0_4K | \
                   TCR_EPD1 | TCR_IPS_40BIT)

// MAIR, TCR and TTBR0 for the tables, then the MMU and both caches on. The same for
// every core; a leaf without locals, so it needs no stack (a started core calls it
// before its stack is cacheable memory).
static inline __attribute__((always_inline)) void mmu_turn_on(uint64_t mair, uint64_t tcr, uint64_t ttbr0) {
  __asm__ volatile(
      "msr mair_el1, %0\n"
      "msr tcr_el1, %1\n"
      "msr ttbr0_el1, %2\n"
      "dsb ish\n"
      "tlbi vmalle1\n"
      "dsb ish\n"
      "isb\n"
      :
      : "r"(mair), "r"(tcr), "r"(ttbr0)
      : "memory");
  uint64_t sctlr;
  __asm__ volatile("mrs %0, sctlr_el1" : "=r"(sctlr));
  sctlr |= SCTLR_M | SCTLR_C | SCTLR_I;
  __asm__ volatile("msr sctlr_el1, %0\n isb" : : "r"(sctlr) : "memory");
}

void arch_mmu_enable(void) {
  build_tables();
  mmu_turn_on(MAIR_VALUE, TCR_VALUE, (uint64_t)(uintptr_t)level0);
}

// A started core uses the kernel map once the boot core has switched to it
// (translation.c, values cleaned to memory); before that, the early tables, written
// with the boot core's MMU off, straight to memory. Table walks are cacheable and
// coherent, so the kernel map's tables need no cleaning.
extern uint64_t arch_kernel_ttbr0;
void arch_mmu_enable_secondary(void) {
  uint64_t ttbr0 = *(volatile uint64_t *)&arch_kernel_ttbr0;
  mmu_turn_on(MAIR_VALUE, TCR_VALUE, ttbr0 != 0 ? ttbr0 : (uint64_t)(uintptr_t)level0);
}

#pragma clang attribute pop

#endif
