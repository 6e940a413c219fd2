// Trap reports, semihosting and power-off on RISC-V 64: what the kernel does when a
// trap arrives through trap.S, how it leaves the machine (semihosting SYS_EXIT, else
// the SBI's system reset), the time counter, and the test kernel's deliberate faults.
#include "ArchSupport.h"
#include "../report.h"
#include "sbi.h"

#ifdef ARCH_RISCV64

// The frame trap.S pushes: x0-x31 (x2: the interrupted sp), sepc, sstatus, scause, stval.
enum { FRAME_RA = 1, FRAME_SP = 2, FRAME_FP = 8, FRAME_SEPC = 32, FRAME_SSTATUS = 33, FRAME_SCAUSE = 34, FRAME_STVAL = 35 };

// scause's exception codes (the privileged spec, table "Supervisor cause register").
enum {
  CAUSE_FETCH_MISALIGNED = 0, CAUSE_FETCH_ACCESS = 1, CAUSE_ILLEGAL_INSTRUCTION = 2, CAUSE_BREAKPOINT = 3,
  CAUSE_LOAD_MISALIGNED = 4, CAUSE_LOAD_ACCESS = 5, CAUSE_STORE_MISALIGNED = 6, CAUSE_STORE_ACCESS = 7,
  CAUSE_USER_ECALL = 8, CAUSE_SUPERVISOR_ECALL = 9, CAUSE_FETCH_PAGE_FAULT = 12, CAUSE_LOAD_PAGE_FAULT = 13,
  CAUSE_STORE_PAGE_FAULT = 15, CAUSE_SOFTWARE_CHECK = 18, CAUSE_HARDWARE_ERROR = 19,
};
#define CAUSE_INTERRUPT (1ull << 63)

#define SYS_ERRNO 0x13
#define SYS_GET_CMDLINE 0x15
#define SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

long arch_semihosting_call(long operation, void *parameter);
extern char arch_semihosting_break[];

// -1 before the probe, then 1 (semihosting answers) or 0 (the ebreak traps).
volatile int arch_semihosting = -1;
static volatile int probing;
// Per hart: the page fault (sepc, stval) last retried, so that a second one there is
// reported (see arch_exception).
static uint64_t retried_pc[ARCH_MAX_CPUS], retried_address[ARCH_MAX_CPUS];
// The time counter's frequency: the device tree's timebase-frequency (QEMU virt: 10 MHz).
uint64_t arch_timebase_frequency = 10000000;

static const char *cause_name(uint64_t cause) {
  if (cause & CAUSE_INTERRUPT) {
    switch (cause & ~CAUSE_INTERRUPT) {
    case 1: return "supervisor software interrupt";
    case 5: return "supervisor timer interrupt";
    case 9: return "supervisor external interrupt";
    default: return "interrupt";
    }
  }
  switch (cause) {
  case CAUSE_FETCH_MISALIGNED: return "instruction address misaligned";
  case CAUSE_FETCH_ACCESS: return "instruction access fault";
  case CAUSE_ILLEGAL_INSTRUCTION: return "illegal instruction";
  case CAUSE_BREAKPOINT: return "breakpoint";
  case CAUSE_LOAD_MISALIGNED: return "load address misaligned";
  case CAUSE_LOAD_ACCESS: return "load access fault";
  case CAUSE_STORE_MISALIGNED: return "store address misaligned";
  case CAUSE_STORE_ACCESS: return "store access fault";
  case CAUSE_USER_ECALL: return "ecall from U-mode";
  case CAUSE_SUPERVISOR_ECALL: return "ecall from S-mode";
  case CAUSE_FETCH_PAGE_FAULT: return "instruction page fault";
  case CAUSE_LOAD_PAGE_FAULT: return "load page fault";
  case CAUSE_STORE_PAGE_FAULT: return "store page fault";
  case CAUSE_SOFTWARE_CHECK: return "software check";
  case CAUSE_HARDWARE_ERROR: return "hardware error";
  default: return "unrecognised cause";
  }
}


extern void arch_describe_fault(uint64_t far, int is_write, int instruction) __attribute__((weak));
extern int kernel_describe_pool_fault(uint64_t far, int is_write) __attribute__((weak));

// ABI names, as the report prints the registers.
static const char *const register_names[32] = {
  "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
  "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
};

// Called by trap.S with the frame it pushed. Returns only for a handled probe or a page
// fault retried once.
void arch_exception(uint64_t *frame) {
  uint64_t cause = frame[FRAME_SCAUSE];
  // The semihosting probe: its ebreak traps as a breakpoint when QEMU was not given
  // -semihosting-config. Note it and step over the instruction.
  if (probing && cause == CAUSE_BREAKPOINT && frame[FRAME_SEPC] == (uintptr_t)arch_semihosting_break) {
    arch_semihosting = 0;
    frame[FRAME_SEPC] += 4;
    return;
  }
  // A page fault is retried once after a local SFENCE.VMA of its address: a hart may
  // keep a translation's old invalid entry after another hart mapped the page (vmalloc;
  // the mapping hart fences only itself on a new entry), as Linux's RISC-V port retries
  // a fault on a new vmalloc mapping. The same fault again is a real one.
  if (cause == CAUSE_LOAD_PAGE_FAULT || cause == CAUSE_STORE_PAGE_FAULT || cause == CAUSE_FETCH_PAGE_FAULT) {
    unsigned hart = (unsigned)(report_this_cpu()->cpu % ARCH_MAX_CPUS);
    if (retried_pc[hart] != frame[FRAME_SEPC] || retried_address[hart] != frame[FRAME_STVAL]) {
      retried_pc[hart] = frame[FRAME_SEPC];
      retried_address[hart] = frame[FRAME_STVAL];
      __asm__ volatile("sfence.vma %0, zero" : : "r"(frame[FRAME_STVAL]) : "memory");
      return;
    }
    retried_pc[hart] = 0;
    retried_address[hart] = 0;
  }
  report_begin(frame[FRAME_SEPC], "scause", cause);
  report_put("\nexception: ");
  report_put(cause & CAUSE_INTERRUPT ? "interrupt" : "synchronous");
  report_put(" at ");
  report_hex(frame[FRAME_SEPC]);
  report_put(" (scause ");
  report_hex(cause);
  report_put(": ");
  report_put(cause_name(cause));
  report_put(", stval ");
  report_hex(frame[FRAME_STVAL]);
  report_put(")\n");
  // A load or store page fault in the sampling detector's pool is a memory bug it
  // classifies (KernelBoot/KernelGuardedPool.swift); any page or access fault else is
  // described by the kernel map (Arch/FaultDescription.swift).
  int is_write = cause == CAUSE_STORE_PAGE_FAULT || cause == CAUSE_STORE_ACCESS;
  int is_data = is_write || cause == CAUSE_LOAD_PAGE_FAULT || cause == CAUSE_LOAD_ACCESS;
  int is_fetch = cause == CAUSE_FETCH_PAGE_FAULT || cause == CAUSE_FETCH_ACCESS;
  int described = 0;
  if (is_data && kernel_describe_pool_fault) described = kernel_describe_pool_fault(frame[FRAME_STVAL], is_write);
  if (!described && (is_data || is_fetch) && arch_describe_fault) {
    arch_describe_fault(frame[FRAME_STVAL], is_write, is_fetch);
  }
  for (int i = 1; i < 32; i++) {
    report_put((i - 1) % 4 == 0 ? "  " : " ");
    report_put(register_names[i]);
    report_put(register_names[i][2] ? " " : register_names[i][1] ? "  " : "   ");
    report_padded_hex(frame[i]);
    if ((i - 1) % 4 == 3 || i == 31) report_put("\n");
  }
  report_put("  cpu ");
  report_decimal((unsigned)report_this_cpu()->cpu);
  report_put(" (hart ");
  report_decimal((unsigned)report_this_cpu()->mpidr);
  report_put(")\n  sstatus ");
  report_padded_hex(frame[FRAME_SSTATUS]);
  report_put("\n");
  report_backtrace(frame[FRAME_SEPC], frame[FRAME_RA], frame[FRAME_FP]);
  report_end();
}

// RISC-V keeps instruction-fetch-independent data caches coherent between harts and
// with memory as seen by harts: a fence orders what a hart wrote before another reads
// it with its MMU off.
void arch_cache_clean(const volatile void *ptr, size_t size) {
  (void)ptr, (void)size;
  __asm__ volatile("fence rw, rw" : : : "memory");
}
void arch_cache_clean_invalidate(const volatile void *ptr, size_t size) {
  (void)ptr, (void)size;
  __asm__ volatile("fence rw, rw" : : : "memory");
}
void arch_cache_invalidate(const volatile void *ptr, size_t size) {
  (void)ptr, (void)size;
  __asm__ volatile("fence rw, rw" : : : "memory");
}
void arch_dsb(void) { __asm__ volatile("fence iorw, iorw" : : : "memory"); }

uint64_t arch_current_el(void) { return 1; }  // S-mode: the only mode the kernel runs in

uint64_t arch_counter(void) {
  uint64_t ticks;
  __asm__ volatile("rdtime %0" : "=r"(ticks));
  return ticks;
}
uint64_t arch_counter_frequency(void) { return arch_timebase_frequency ? arch_timebase_frequency : 10000000; }

// Deliberate faults for the test kernel's `fault=...` boots (the others: trap_report.c).
void arch_fault_undefined(void) { __asm__ volatile("unimp"); }
void arch_fault_brk(void) { __asm__ volatile("ebreak"); }


void arch_fault_stack_overflow(uintptr_t stack_top) {
  if (stack_top != 0) {
    __asm__ volatile("mv sp, %0\n li a0, 0\n li a1, 0\n call arch_fault_recurse" : : "r"(stack_top) : "a0", "a1", "ra", "memory");
  }
  arch_fault_recurse(0, 0);
}

void arch_fault_execute(uintptr_t address) {
  // `ret` (jalr x0, 0(ra)), made visible to instruction fetch, then called.
  *(volatile uint32_t *)address = 0x00008067u;
  __asm__ volatile("fence.i" : : : "memory");
  ((void (*)(void))address)();
}

// Called once by boot.S, with the trap vector installed: does the semihosting
// sequence reach a host? SYS_ERRNO changes nothing either way.
void arch_probe_semihosting(void) {
  probing = 1;
  arch_semihosting = 1;
  arch_semihosting_call(SYS_ERRNO, 0);
  probing = 0;
}

int arch_semihosting_available(void) { return arch_semihosting == 1; }

long arch_semihosting_cmdline(char *buffer, size_t capacity) {
  if (arch_semihosting != 1) return -1;
  uint64_t block[2] = {(uintptr_t)buffer, capacity};
  return arch_semihosting_call(SYS_GET_CMDLINE, block);
}

static void power_off_status(int status) __attribute__((noreturn));

void arch_exit(int code) {
  int status = arch_exit_status(code);
  if (arch_semihosting == 1) {
    uint64_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint64_t)(int64_t)status};
    arch_semihosting_call(SYS_EXIT, block);
  }
  power_off_status(status);
}

void arch_power_off(void) { power_off_status(0); }

// Without semihosting: the SBI's system reset (SRST) shuts down, with "system failure"
// as the reason for a non-zero status (QEMU's virt then exits with a failure status);
// firmware without SRST gets the legacy shutdown call. Should either return: one line,
// then sleep.
static void power_off_status(int status) {
  if (sbi_has_extension(SBI_EXT_SRST)) {
    sbi_call(SBI_EXT_SRST, SBI_SRST_SYSTEM_RESET, SBI_SRST_SHUTDOWN,
             status == 0 ? SBI_SRST_REASON_NONE : SBI_SRST_REASON_FAILURE, 0, 0);
    report_put("power-off: SBI system reset returned; halted\n");
  } else {
    sbi_call(SBI_EXT_LEGACY_SHUTDOWN, 0, 0, 0, 0, 0);
    report_put("power-off: no SBI system reset, and the legacy shutdown returned; halted\n");
  }
  report_halt();
}


#endif
