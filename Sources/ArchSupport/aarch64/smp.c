// Starting and parking AArch64 cores: PSCI CPU_ON on virt, the spin table on the
// Raspberry Pis, boot.S's holding pen without firmware. The blocks they run with are
// ../cores.c's.
#include "ArchSupport.h"
#include "../cpu_block.h"

#ifdef ARCH_AARCH64

// PSCI 0.2+ function identifiers (SMC64 calling convention) and a status.
#define PSCI_CPU_ON_64 0xC4000003u
#define PSCI_CPU_OFF 0x84000002u
#define PSCI_INVALID_PARAMETERS (-2)

/// How each core was started (ARCH_START_...), for arch_cpu_park; 0 before.
static uint8_t start_method[ARCH_MAX_CPUS];

/// The conduit the device tree's /psci names (ARCH_START_PSCI_...), 0 for none.
int arch_psci_conduit;

/// boot.S: 1 once a core waits in the holding pen (written with the MMU off).
extern uint32_t arch_pen_waiting;

int arch_cores_waiting_at_entry(void) {
  arch_cache_invalidate(&arch_pen_waiting, sizeof arch_pen_waiting);
  return __atomic_load_n(&arch_pen_waiting, __ATOMIC_ACQUIRE) != 0;
}

void arch_set_psci_conduit(int method) {
  arch_psci_conduit = method == ARCH_START_PSCI_HVC || method == ARCH_START_PSCI_SMC ? method : 0;
}

// A PSCI call over the conduit `method` names. SMCCC lets the callee change x4-x17.
long arch_psci_call(uint64_t function, uint64_t a1, uint64_t a2, uint64_t a3, int method) {
  register uint64_t x0 __asm__("x0") = function;
  register uint64_t x1 __asm__("x1") = a1;
  register uint64_t x2 __asm__("x2") = a2;
  register uint64_t x3 __asm__("x3") = a3;
  if (method == ARCH_START_PSCI_SMC) {
    __asm__ volatile("smc #0"
                     : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)
                     :
                     : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16",
                       "x17", "memory");
  } else {
    __asm__ volatile("hvc #0"
                     : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)
                     :
                     : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16",
                       "x17", "memory");
  }
  return (long)x0;
}

long arch_cpu_start(unsigned long cpu, int method, uint64_t release_address) {
  if (cpu == 0 || cpu >= ARCH_MAX_CPUS) return PSCI_INVALID_PARAMETERS;
  uintptr_t entry = (uintptr_t)arch_secondary_entry;
  switch (method) {
  case ARCH_START_PSCI_HVC:
  case ARCH_START_PSCI_SMC:
    start_method[cpu] = (uint8_t)method;
    // Target: the core's MPIDR; context id: its block.
    return arch_psci_call(PSCI_CPU_ON_64, arch_cpu_block(cpu)->mpidr, entry, (uintptr_t)arch_cpu_block(cpu), method);
  case ARCH_START_SPIN_TABLE: {
    if (release_address == 0 || (release_address & 7) != 0) return PSCI_INVALID_PARAMETERS;
    start_method[cpu] = (uint8_t)method;
    volatile uint64_t *slot = (volatile uint64_t *)(uintptr_t)release_address;
    *slot = entry;
    // The core polls its slot with its MMU off: the entry must be in memory.
    arch_cache_clean_invalidate((const void *)slot, sizeof *slot);
    __asm__ volatile("sev" : : : "memory");
    return 0;
  }
  case ARCH_START_HOLDING_PEN:
    // The block is prepared and cleaned: the core in the pen finds it at its next look.
    start_method[cpu] = (uint8_t)method;
    __asm__ volatile("dsb sy\n sev" : : : "memory");
    return 0;
  default:
    return PSCI_INVALID_PARAMETERS;
  }
}

void arch_cpu_park(void) {
  uint64_t block;
  __asm__ volatile("mrs %0, tpidr_el1" : "=r"(block));
  unsigned long cpu = ((const struct arch_cpu *)(uintptr_t)block)->cpu;
  int method = cpu < ARCH_MAX_CPUS ? start_method[cpu] : 0;
  if (method == ARCH_START_PSCI_HVC || method == ARCH_START_PSCI_SMC) {
    arch_psci_call(PSCI_CPU_OFF, 0, 0, 0, method);  // returns only on failure
  }
  for (;;) __asm__ volatile("wfi");
}

const char *arch_cpu_firmware_state(unsigned long cpu) {
  (void)cpu;
  return "";  // PSCI's AFFINITY_INFO is not asked
}

void arch_cpu_relax(void) {
  __asm__ volatile("yield" : : : "memory");
}

#endif
