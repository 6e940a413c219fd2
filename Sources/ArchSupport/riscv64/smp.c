// Starting and parking RISC-V harts with the SBI's Hart State Management extension:
// hart_start enters arch_secondary_entry (boot.S) in S-mode, MMU off, with a0 = the
// hart id and a1 = its per-CPU block; hart_stop parks it. The blocks are ../cores.c's.
#include "ArchSupport.h"
#include "sbi.h"

#ifdef ARCH_RISCV64

#define SBI_ERR_INVALID_PARAM (-3)

/// Set once a hart was started: TLB invalidations then reach the others (translation.c).
int arch_harts_started;

long arch_cpu_start(unsigned long cpu, int method, uint64_t release_address) {
  (void)release_address;
  struct arch_cpu *block = arch_cpu_block(cpu);
  if (cpu == 0 || block == 0 || method != ARCH_START_SBI_HSM) return SBI_ERR_INVALID_PARAM;
  __atomic_store_n(&arch_harts_started, 1, __ATOMIC_RELEASE);
  struct sbi_answer answer = sbi_call(SBI_EXT_HSM, SBI_HSM_HART_START, block->mpidr,
                                      (uintptr_t)arch_secondary_entry, (uintptr_t)block, 0);
  return answer.error;
}

int arch_sbi_has_hsm(void) { return sbi_has_extension(SBI_EXT_HSM); }

const char *arch_cpu_firmware_state(unsigned long cpu) {
  static const char *const states[] = {"started", "stopped", "start pending", "stop pending",
                                       "suspended", "suspend pending", "resume pending"};
  struct arch_cpu *block = arch_cpu_block(cpu);
  if (block == 0) return "";
  struct sbi_answer answer = sbi_call(SBI_EXT_HSM, SBI_HSM_HART_GET_STATUS, block->mpidr, 0, 0, 0);
  if (answer.error != 0) return "no status";
  return answer.value >= 0 && answer.value < 7 ? states[answer.value] : "unknown status";
}

void arch_cpu_park(void) {
  sbi_call(SBI_EXT_HSM, SBI_HSM_HART_STOP, 0, 0, 0, 0);  // returns only on failure
  for (;;) __asm__ volatile("wfi");
}

void arch_cpu_relax(void) {
  // Zihintpause's PAUSE (a FENCE hint: a no-op on harts without the extension).
  __asm__ volatile(".insn i 0x0F, 0, x0, x0, 0x010" : : : "memory");
}

// Every hart but the boot one waits in the firmware until hart_start.
int arch_cores_waiting_at_entry(void) { return 0; }

#endif
