// Exception reports, the semihosting probe and power-off: what the kernel does when an
// exception arrives through vectors.S, and how it leaves the machine without
// semihosting.
#include "ArchSupport.h"

#ifdef ARCH_BARE_METAL

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
static volatile int reporting;

static void put(const char *text) {
  while (*text) putchar(*text++);
}

static void put_hex(uint64_t value) {
  put("0x");
  int shift = 60;
  while (shift > 0 && ((value >> shift) & 0xf) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) putchar("0123456789abcdef"[(value >> shift) & 0xf]);
}

static void put_padded_hex(uint64_t value) {
  put("0x");
  for (int shift = 60; shift >= 0; shift -= 4) putchar("0123456789abcdef"[(value >> shift) & 0xf]);
}

static void put_decimal(unsigned value) {
  char digits[4];
  int count = 0;
  do { digits[count++] = (char)('0' + value % 10); value /= 10; } while (value && count < 4);
  while (count) putchar(digits[--count]);
}

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

// Whether [address, address + 16) lies on the kernel stack (frame records live there).
static int on_stack(uint64_t address) {
  return (address & 15) == 0 && address >= arch_stack_bottom() && address + 16 <= arch_stack_top();
}

static void halt(void) __attribute__((noreturn));
static void halt(void) {
  for (;;) __asm__ volatile("wfi");
}

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
  if (reporting) {
    put("\nexception: another exception while reporting one, at ");
    put_hex(frame[FRAME_ELR]);
    put(" (ESR ");
    put_hex(esr);
    put("); halted\n");
    if (arch_semihosting == 1) arch_exit(4);
    halt();
  }
  reporting = 1;
  put("\nexception: ");
  put(arch_exception_kind(kind));
  if (kind >= 4) put(kind >= 8 ? " from a lower EL" : " on the exception stack");
  put(" at ");
  put_hex(frame[FRAME_ELR]);
  put(" (ESR ");
  put_hex(esr);
  put(": ");
  put((kind & 3) == 0 ? arch_exception_class(esr) : arch_exception_kind(kind));
  put(", FAR ");
  put_hex(frame[FRAME_FAR]);
  put(")\n");
  for (int i = 0; i < 31; i++) {
    put(i % 4 == 0 ? "  x" : " x");
    put_decimal((unsigned)i);
    put(i < 10 ? "  " : " ");
    put_padded_hex(frame[i]);
    if (i % 4 == 3) put("\n");
  }
  put(" sp  ");
  put_padded_hex(frame[FRAME_SP]);
  put("\n  spsr ");
  put_padded_hex(frame[FRAME_SPSR]);
  put("\n  backtrace: ");
  put_hex(frame[FRAME_ELR]);
  put(" ");
  put_hex(frame[30]);
  // Frame records: [x29] = the caller's x29, [x29 + 8] = the return address.
  uint64_t fp = frame[29];
  for (int depth = 0; depth < 32 && on_stack(fp); depth++) {
    const uint64_t *record = (const uint64_t *)fp;
    if (record[1] == 0) break;
    put(" ");
    put_hex(record[1]);
    if (record[0] <= fp) break;  // frames grow towards the stack top
    fp = record[0];
  }
  put("\n");
  if (arch_semihosting == 1) arch_exit(4);
  put("halted (no semihosting to report a status)\n");
  halt();
}

// Cache maintenance by virtual address, 64-byte lines (Cortex-A53 and A72).
void arch_cache_clean(const volatile void *ptr, size_t size) {
  uintptr_t line = (uintptr_t)ptr & ~(uintptr_t)63;
  for (; line < (uintptr_t)ptr + size; line += 64) __asm__ volatile("dc cvac, %0" : : "r"(line) : "memory");
  __asm__ volatile("dsb sy" : : : "memory");
}

void arch_cache_invalidate(const volatile void *ptr, size_t size) {
  uintptr_t line = (uintptr_t)ptr & ~(uintptr_t)63;
  __asm__ volatile("dsb sy" : : : "memory");
  for (; line < (uintptr_t)ptr + size; line += 64) __asm__ volatile("dc ivac, %0" : : "r"(line) : "memory");
  __asm__ volatile("dsb sy" : : : "memory");
}

// Deliberate faults for the test kernel's `fault=...` boots.
void arch_fault_data_abort(void) {
  // Bit 48 set: outside the 48-bit range of both translation tables.
  volatile uint64_t *unmapped = (volatile uint64_t *)0x0001000000000000ull;
  (void)*unmapped;
}
void arch_fault_undefined(void) { __asm__ volatile("udf #0"); }
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
//  - virt: PSCI SYSTEM_OFF. QEMU names the conduit in /psci: "hvc" for a guest entered
//    at EL1 (QEMU's own PSCI), "smc" when it boots EL2/EL3 firmware-less (it enters at
//    EL2 or EL3 then); the entry EL picks it.
//  - Raspberry Pi: the PM block's watchdog with the "halt" partition (63) in PM_RSTS,
//    as Linux's bcm2835 power-off does; QEMU models it as power-off. On hardware the
//    firmware then halts.
void arch_power_off(void) __attribute__((noreturn));
void arch_power_off(void) {
#if defined(BOARD_VIRT)
  register uint64_t function __asm__("x0") = 0x84000008;  // PSCI SYSTEM_OFF
  if (arch_boot_el >= 2) {
    __asm__ volatile("smc #0" : "+r"(function) : : "memory");
  } else {
    __asm__ volatile("hvc #0" : "+r"(function) : : "memory");
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
  halt();
}

#endif
