// Exception reports, the semihosting probe and power-off: what the kernel does when an
// exception arrives through vectors.S, and how it leaves the machine without
// semihosting.
#include "ArchSupport.h"
#include "../report.h"

#ifdef ARCH_AARCH64

// The frame vectors.S pushes: x0-x30, the interrupted SP, ELR, SPSR, ESR, FAR.
enum { FRAME_SP = 31, FRAME_ELR = 32, FRAME_SPSR = 33, FRAME_ESR = 34, FRAME_FAR = 35 };

// ESR_EL1 exception classes.
enum {
  EC_UNKNOWN = 0x00, EC_WFX = 0x01, EC_FP_ACCESS = 0x07, EC_ILLEGAL_STATE = 0x0e,
  EC_SVC64 = 0x15, EC_SYSREG = 0x18, EC_IABT_LOWER = 0x20, EC_IABT_SAME = 0x21,
  EC_PC_ALIGNMENT = 0x22, EC_DABT_LOWER = 0x24, EC_DABT_SAME = 0x25, EC_SP_ALIGNMENT = 0x26,
  EC_FP_EXCEPTION = 0x2c, EC_SERROR = 0x2f, EC_BREAKPOINT_LOWER = 0x30, EC_BREAKPOINT_SAME = 0x31,
  EC_STEP_LOWER = 0x32, EC_STEP_SAME = 0x33, EC_WATCHPOINT_LOWER = 0x34, EC_WATCHPOINT_SAME = 0x35,
  EC_BRK = 0x3c,
};

// -1 before the probe, then 1 (semihosting answers `hlt #0xf000`) or 0 (it traps).
volatile int arch_semihosting = -1;
static volatile int probing;

const char *arch_exception_kind(uint64_t kind) {
  static const char *const kinds[4] = {"synchronous", "IRQ", "FIQ", "SError"};
  return kinds[kind & 3];
}

const char *arch_exception_class(uint64_t esr) {
  switch ((esr >> 26) & 0x3f) {
  case EC_UNKNOWN: return "undefined instruction";
  case EC_WFX: return "trapped WFI/WFE";
  case EC_FP_ACCESS: return "FP/SIMD access trapped";
  case EC_ILLEGAL_STATE: return "illegal execution state";
  case EC_SVC64: return "SVC";
  case EC_SYSREG: return "system register access trapped";
  case EC_IABT_LOWER: return "instruction abort from a lower EL";
  case EC_IABT_SAME: return "instruction abort";
  case EC_PC_ALIGNMENT: return "PC alignment fault";
  case EC_DABT_LOWER: return "data abort from a lower EL";
  case EC_DABT_SAME: return "data abort";
  case EC_SP_ALIGNMENT: return "SP alignment fault";
  case EC_FP_EXCEPTION: return "FP exception";
  case EC_SERROR: return "SError";
  case EC_BREAKPOINT_LOWER: case EC_BREAKPOINT_SAME: return "hardware breakpoint";
  case EC_STEP_LOWER: case EC_STEP_SAME: return "software step";
  case EC_WATCHPOINT_LOWER: case EC_WATCHPOINT_SAME: return "watchpoint";
  case EC_BRK: return "BRK";
  default: return "unrecognised exception class";
  }
}


extern void arch_describe_fault(uint64_t far, int is_write, int instruction) __attribute__((weak));
extern int kernel_describe_pool_fault(uint64_t far, int is_write) __attribute__((weak));

// Called by vectors.S with the frame it pushed. Returns only for a handled probe.
void arch_exception(uint64_t kind, uint64_t *frame) {
  uint64_t esr = frame[FRAME_ESR];
  uint64_t ec = (esr >> 26) & 0x3f;
  // The semihosting probe: `hlt` traps as an undefined instruction when QEMU was not
  // given -semihosting-config. Note it and step over the instruction.
  if (probing && (kind & 3) == 0 && ec == EC_UNKNOWN) {
    arch_semihosting = 0;
    frame[FRAME_ELR] += 4;
    return;
  }
  report_begin(frame[FRAME_ELR], "ESR", esr);
  report_put("\nexception: ");
  report_put(arch_exception_kind(kind));
  if (kind >= 4) report_put(kind >= 8 ? " from a lower EL" : " on the exception stack");
  report_put(" at ");
  report_hex(frame[FRAME_ELR]);
  report_put(" (ESR ");
  report_hex(esr);
  report_put(": ");
  report_put((kind & 3) == 0 ? arch_exception_class(esr) : arch_exception_kind(kind));
  report_put(", FAR ");
  report_hex(frame[FRAME_FAR]);
  report_put(")\n");
  // What the kernel map says about FAR (Arch/FaultDescription.swift; absent from a kernel
  // built without Arch's Swift side).
  // A data abort in the sampling detector's pool is a memory bug it classifies
  // (KernelBoot/KernelGuardedPool.swift); anything else is described by the kernel map.
  int described = 0;
  if ((kind & 3) == 0 && ec == EC_DABT_SAME && kernel_describe_pool_fault) {
    described = kernel_describe_pool_fault(frame[FRAME_FAR], (esr >> 6) & 1);
  }
  if (!described && (kind & 3) == 0 && (ec == EC_DABT_SAME || ec == EC_IABT_SAME) && arch_describe_fault) {
    arch_describe_fault(frame[FRAME_FAR], (esr >> 6) & 1, ec == EC_IABT_SAME);  // ESR bit 6: WnR
  }
  for (int i = 0; i < 31; i++) {
    report_put(i % 4 == 0 ? "  x" : " x");
    report_decimal((unsigned)i);
    report_put(i < 10 ? "  " : " ");
    report_padded_hex(frame[i]);
    if (i % 4 == 3) report_put("\n");
  }
  report_put(" sp  ");
  report_padded_hex(frame[FRAME_SP]);
  report_put("\n  cpu ");
  report_decimal((unsigned)report_this_cpu()->cpu);
  report_put("\n  spsr ");
  report_padded_hex(frame[FRAME_SPSR]);
  report_put("\n");
  report_backtrace(frame[FRAME_ELR], frame[30], frame[29]);
  report_end();
}

// Cache maintenance by virtual address, 64-byte lines (Cortex-A53 and A72).
void arch_cache_clean(const volatile void *ptr, size_t size) {
  uintptr_t line = (uintptr_t)ptr & ~(uintptr_t)63;
  for (; line < (uintptr_t)ptr + size; line += 64) __asm__ volatile("dc cvac, %0" : : "r"(line) : "memory");
  __asm__ volatile("dsb sy" : : : "memory");
}

void arch_cache_clean_invalidate(const volatile void *ptr, size_t size) {
  uintptr_t line = (uintptr_t)ptr & ~(uintptr_t)63;
  __asm__ volatile("dsb sy" : : : "memory");
  for (; line < (uintptr_t)ptr + size; line += 64) __asm__ volatile("dc civac, %0" : : "r"(line) : "memory");
  __asm__ volatile("dsb sy" : : : "memory");
}

void arch_cache_invalidate(const volatile void *ptr, size_t size) {
  uintptr_t line = (uintptr_t)ptr & ~(uintptr_t)63;
  __asm__ volatile("dsb sy" : : : "memory");
  for (; line < (uintptr_t)ptr + size; line += 64) __asm__ volatile("dc ivac, %0" : : "r"(line) : "memory");
  __asm__ volatile("dsb sy" : : : "memory");
}

// Deliberate faults for the test kernel's `fault=...` boots (the others: trap_report.c).
void arch_fault_undefined(void) { __asm__ volatile("udf #0"); }


void arch_fault_stack_overflow(uintptr_t stack_top) {
  if (stack_top != 0) {
    // Onto the given stack (SP is SP_EL0 here), then down.
    __asm__ volatile("mov sp, %0\n mov x0, xzr\n mov x1, xzr\n bl arch_fault_recurse" : : "r"(stack_top) : "x0", "x1", "x30", "memory");
  }
  arch_fault_recurse(0, 0);
}

void arch_fault_execute(uintptr_t address) {
  // `ret`, made visible to instruction fetch, then called.
  *(volatile uint32_t *)address = 0xd65f03c0u;
  __asm__ volatile("dc cvau, %0\n dsb ish\n ic ivau, %0\n dsb ish\n isb" : : "r"(address) : "memory");
  ((void (*)(void))address)();
}
void arch_fault_brk(void) { __asm__ volatile("brk #0x1"); }

// Called once by boot.S, with the vectors installed: does `hlt #0xf000` reach a
// semihosting host? SYS_ERRNO (0x13) changes nothing either way.
void arch_probe_semihosting(void) {
  probing = 1;
  arch_semihosting = 1;
  register uint64_t operation __asm__("x0") = 0x13;
  register uint64_t parameter __asm__("x1") = 0;
  __asm__ volatile("hlt #0xf000" : "+r"(operation) : "r"(parameter) : "memory");
  probing = 0;
}

int arch_semihosting_available(void) { return arch_semihosting == 1; }

// Power off without semihosting.
//  - virt: PSCI SYSTEM_OFF over the conduit the device tree's /psci names (recorded by
//    arch_set_psci_conduit when the tree was read). Without one (QEMU's secure=on
//    without firmware: EL3 has no monitor, and an SMC would enter an empty vector
//    table) there is no way to power off: one line, then sleep.
//  - Raspberry Pi: the PM block's watchdog with the "halt" partition (63) in PM_RSTS,
//    as Linux's bcm2835 power-off does; QEMU models it as power-off. On hardware the
//    firmware then halts.
#define PSCI_SYSTEM_OFF 0x84000008u
void arch_power_off(void) __attribute__((noreturn));
void arch_power_off(void) {
#if defined(BOARD_VIRT)
  if (arch_psci_conduit != 0) {
    arch_psci_call(PSCI_SYSTEM_OFF, 0, 0, 0, arch_psci_conduit);  // returns only on failure
    report_put("power-off: PSCI SYSTEM_OFF returned; halted\n");
  } else {
    report_put("power-off: no semihosting and no PSCI in the device tree; halted\n");
  }
#else
#if defined(BOARD_RASPI4B)
  const uintptr_t pm = 0xFE100000;
#else
  const uintptr_t pm = 0x3F100000;
#endif
  const uint32_t password = 0x5a000000;
  const uintptr_t rstc = pm + 0x1c, rsts = pm + 0x20, wdog = pm + 0x24;
  uint32_t status = arch_mmio_read32(rsts);
  // Partition 63 (bits 0, 2, 4, 6, 8, 10): "halt" to the firmware.
  arch_mmio_write32(rsts, password | (status & 0xfaaa) | 0x555);
  arch_mmio_write32(wdog, password | 10);
  arch_mmio_write32(rstc, password | (arch_mmio_read32(rstc) & ~0x30u) | 0x20);
#endif
  report_halt();
}


#endif

