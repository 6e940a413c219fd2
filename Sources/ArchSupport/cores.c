// The cores' per-CPU blocks, shared by every architecture: numbering, the state
// machine the boot core and a started core move through, the kernel stacks' canaries.
// How a core is started and parked is the architecture's (aarch64/smp.c,
// riscv64/smp.c); the Swift half (what to start, the wait, "cpu N online") is
// Arch/SecondaryCores.swift.
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

/// The blocks, in .bss: zero (cpu 0, off) until boot.S fills block 0 and
/// arch_cpu_prepare the others. One cache line each.
struct arch_cpu arch_cpus[ARCH_MAX_CPUS] __attribute__((aligned(CPU_BLOCK_BYTES)));

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
