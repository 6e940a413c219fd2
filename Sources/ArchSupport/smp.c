// The cores: their per-CPU blocks, starting them (PSCI CPU_ON on virt, the spin table
// on the Raspberry Pis), parking them, and the canaries at the low end of their stacks.
// The Swift half (what to start, the wait, "cpu N online") is Arch/SecondaryCores.swift.
#include "ArchSupport.h"
#include "cpu_block.h"
#include "report.h"

#ifdef ARCH_BARE_METAL

// boot.S and KernelSyncAtomics.h's ks_current_cpu read the blocks by these offsets.
_Static_assert(sizeof(struct arch_cpu) == CPU_BLOCK_BYTES, "per-CPU block size");
_Static_assert(__builtin_offsetof(struct arch_cpu, cpu) == CPU_BLOCK_CPU, "cpu offset");
_Static_assert(__builtin_offsetof(struct arch_cpu, stack_bottom) == CPU_BLOCK_STACK_BOTTOM, "stack_bottom offset");
_Static_assert(__builtin_offsetof(struct arch_cpu, stack_top) == CPU_BLOCK_STACK_TOP, "stack_top offset");
_Static_assert(__builtin_offsetof(struct arch_cpu, exception_stack_top) == CPU_BLOCK_EXCEPTION_STACK_TOP,
               "exception_stack_top offset");
_Static_assert(__builtin_offsetof(struct arch_cpu, state) == CPU_BLOCK_STATE, "state offset");
_Static_assert(__builtin_offsetof(struct arch_cpu, entry_el) == CPU_BLOCK_ENTRY_EL, "entry_el offset");
_Static_assert(__builtin_offsetof(struct arch_cpu, midr) == CPU_BLOCK_MIDR, "midr offset");
_Static_assert(__builtin_offsetof(struct arch_cpu, mpidr) == CPU_BLOCK_MPIDR, "mpidr offset");
_Static_assert(ARCH_MAX_CPUS <= 64, "the started cores are one 64-bit mask");

// PSCI 0.2+ function identifiers (SMC64 calling convention) and a status.
#define PSCI_CPU_ON_64 0xC4000003u
#define PSCI_CPU_OFF 0x84000002u
#define PSCI_INVALID_PARAMETERS (-2)

/// The blocks, in .bss: zero (cpu 0, off) until boot.S fills block 0 and
/// arch_cpu_prepare the others. One cache line each.
struct arch_cpu arch_cpus[ARCH_MAX_CPUS] __attribute__((aligned(CPU_BLOCK_BYTES)));

/// How each core was started (ARCH_START_...), for arch_cpu_park; 0 before.
static uint8_t start_method[ARCH_MAX_CPUS];

/// The conduit the device tree's /psci names (ARCH_START_PSCI_...), 0 for none.
int arch_psci_conduit;

/// boot.S: 1 once a core waits in the holding pen (written with the MMU off).
extern uint32_t arch_pen_waiting;

/// Bit n set: cpu n's overwritten canary has been reported.
static uint64_t canary_reported;

struct arch_cpu *arch_cpu_block(unsigned long cpu) {
  return cpu < ARCH_MAX_CPUS ? &arch_cpus[cpu] : 0;
}

uint32_t arch_cpu_state(unsigned long cpu) {
  return cpu < ARCH_MAX_CPUS ? __atomic_load_n(&arch_cpus[cpu].state, __ATOMIC_ACQUIRE) : ARCH_CPU_OFF;
}

int arch_cpu_transition(unsigned long cpu, uint32_t from, uint32_t to) {
  if (cpu >= ARCH_MAX_CPUS) return 0;
  return __atomic_compare_exchange_n(&arch_cpus[cpu].state, &from, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

int arch_cpu_prepare(unsigned long cpu, uint64_t mpidr, uintptr_t stack, size_t bytes, uintptr_t exception_stack,
                     size_t exception_bytes, arch_cpu_entry entry) {
  if (cpu == 0 || cpu >= ARCH_MAX_CPUS || stack == 0 || (stack & 15) != 0 || bytes < 64 || (bytes & 15) != 0) return -1;
  if (exception_stack == 0 || (exception_stack & 15) != 0 || exception_bytes < 64 || (exception_bytes & 15) != 0) {
    return -1;
  }
  if ((mpidr & ~(uint64_t)ARCH_MPIDR_AFFINITY_MASK) != 0) return -1;
  if (arch_cpu_state(cpu) != ARCH_CPU_OFF) return -1;
  // One block per core: the core finds its block by its MPIDR (boot.S's find_block).
  for (unsigned long other = 0; other < ARCH_MAX_CPUS; other++) {
    if (other != cpu && arch_cpu_state(other) != ARCH_CPU_OFF && arch_cpus[other].mpidr == mpidr) return -1;
  }
  struct arch_cpu *block = &arch_cpus[cpu];
  block->cpu = cpu;
  block->mpidr = mpidr;
  block->stack_bottom = stack;
  block->stack_top = stack + bytes;
  block->exception_stack_top = exception_stack + exception_bytes;
  block->entry = entry;
  *(volatile uint64_t *)stack = ARCH_STACK_CANARY;
  __atomic_store_n(&block->state, ARCH_CPU_RELEASED, __ATOMIC_RELEASE);
  // The core reads its block with its MMU off (straight from memory), and a line of
  // its stacks left in this core's cache could later shadow what it wrote there.
  arch_cache_clean_invalidate(block, sizeof *block);
  arch_cache_clean_invalidate((const void *)stack, bytes);
  arch_cache_clean_invalidate((const void *)exception_stack, exception_bytes);
  return 0;
}

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
    return arch_psci_call(PSCI_CPU_ON_64, arch_cpus[cpu].mpidr, entry, (uintptr_t)&arch_cpus[cpu], method);
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

void arch_cpu_relax(void) {
  __asm__ volatile("yield" : : : "memory");
}

unsigned arch_check_stack_canaries(const char *where) {
  unsigned overwritten = 0;
  for (unsigned cpu = 0; cpu < ARCH_MAX_CPUS; cpu++) {
    const struct arch_cpu *block = &arch_cpus[cpu];
    if (arch_cpu_state(cpu) == ARCH_CPU_OFF || block->stack_bottom == 0) continue;
    if (*(const volatile uint64_t *)(uintptr_t)block->stack_bottom == ARCH_STACK_CANARY) continue;
    overwritten++;
    uint64_t bit = (uint64_t)1 << cpu;
    if (__atomic_fetch_or(&canary_reported, bit, __ATOMIC_RELAXED) & bit) continue;
    report_put(where);
    report_put(": stack canary of cpu ");
    report_decimal(cpu);
    report_put(" overwritten ");
    report_hex(block->stack_bottom);
    report_put("\n");
  }
  return overwritten;
}

void arch_fault_stack_canary(unsigned long cpu) {
  if (cpu >= ARCH_MAX_CPUS || arch_cpus[cpu].stack_bottom == 0) return;
  volatile uint64_t *canary = (volatile uint64_t *)(uintptr_t)arch_cpus[cpu].stack_bottom;
  *canary = ~*canary;
}

int arch_exit_status(int code) {
  unsigned overwritten = arch_check_stack_canaries("exit");
  return overwritten != 0 && code == 0 ? ARCH_EXIT_STACK_SMASHED : code;
}

#endif
