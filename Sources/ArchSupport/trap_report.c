// What every architecture's trap report shares (aarch64/exception.c,
// riscv64/exception.c): one report at a time across cores, a second exception while
// reporting stopped with one line, the backtrace by frame records within the core's
// kernel stack, the end (exit status 4, or halt), and the test kernel's deliberate
// faults that need no instruction of their own.
#include <ArchPerCPU.h>

#include "ArchSupport.h"
#include "report.h"

#ifdef ARCH_BARE_METAL

// Bit n: core n is printing a report (an exception there now is a nested one).
static uint64_t reporting;
// The core printing a report, plus one; 0 when none. One report at a time: a second
// core's exception waits until the first report has ended the run.
static uint32_t report_owner;

const struct arch_cpu *report_this_cpu(void) { return (const struct arch_cpu *)arch_per_cpu_block(); }

void report_halt(void) {
  for (;;) __asm__ volatile("wfi");
}

void report_begin(uint64_t pc, const char *syndrome_name, uint64_t syndrome) {
  const uint64_t cpu_bit = (uint64_t)1 << (report_this_cpu()->cpu & 63);
  if (__atomic_load_n(&reporting, __ATOMIC_RELAXED) & cpu_bit) {
    report_put("\nexception: another exception while reporting one, at ");
    report_hex(pc);
    report_put(" (");
    report_put(syndrome_name);
    report_put(" ");
    report_hex(syndrome);
    report_put("); halted\n");
    if (arch_semihosting_available()) arch_exit(4);
    report_halt();
  }
  __atomic_fetch_or(&reporting, cpu_bit, __ATOMIC_RELAXED);
  uint32_t none = 0;
  while (!__atomic_compare_exchange_n(&report_owner, &none, (uint32_t)report_this_cpu()->cpu + 1, 0, __ATOMIC_ACQUIRE,
                                      __ATOMIC_RELAXED)) {
    none = 0;
    arch_spin_hint();
  }
  arch_check_stack_canaries("exception");
}

// Whether the frame record of frame pointer `fp` lies on the calling core's kernel
// stack (frame records live there).
static int record_on_stack(uint64_t fp) {
  const struct arch_cpu *cpu = report_this_cpu();
  uint64_t record = fp + (uint64_t)(int64_t)ARCH_FRAME_RECORD_OFFSET;
  return (fp & 7) == 0 && fp >= 16 && record >= cpu->stack_bottom && record + 16 <= cpu->stack_top;
}

// The return addresses from the frame records, innermost first, from `fp` on: each
// record is [the caller's fp, the return address] at fp + ARCH_FRAME_RECORD_OFFSET.
static long walk_frames(uint64_t fp, uint64_t *out, long capacity) {
  long depth = 0;
  while (depth < capacity && record_on_stack(fp)) {
    const uint64_t *record = (const uint64_t *)(uintptr_t)(fp + (uint64_t)(int64_t)ARCH_FRAME_RECORD_OFFSET);
    if (record[1] == 0) break;
    out[depth++] = record[1];
    if (record[0] <= fp) break;  // frames grow towards the stack top
    fp = record[0];
  }
  return depth;
}

void report_backtrace(uint64_t pc, uint64_t return_address, uint64_t fp) {
  uint64_t frames[32];
  long depth = walk_frames(fp, frames, 32);
  report_put("  backtrace: ");
  report_hex(pc);
  report_put(" ");
  report_hex(return_address);
  for (long i = 0; i < depth; i++) {
    report_put(" ");
    report_hex(frames[i]);
  }
  report_put("\n");
}

void report_end(void) {
  if (arch_semihosting_available()) arch_exit(4);
  report_put("halted (no semihosting to report a status)\n");
  report_halt();
}

long arch_capture_stack(uint64_t *out, long capacity) {
  return walk_frames((uint64_t)(uintptr_t)__builtin_frame_address(0), out, capacity);
}

// Deliberate faults for the test kernel's `fault=...` boots.
void arch_fault_data_abort(void) {
  // Bit 48 set: outside every table format's range (48-bit AArch64, Sv39).
  volatile uint64_t *unmapped = (volatile uint64_t *)0x0001000000000000ull;
  (void)*unmapped;
}

// Recurses with a 4 KiB frame until the stack runs into its guard page.
__attribute__((noinline)) uint64_t arch_fault_recurse(volatile uint8_t *caller, uint64_t depth) {
  volatile uint8_t frame[4096];
  frame[0] = (uint8_t)depth;
  frame[4095] = caller ? caller[0] : 0;
  return arch_fault_recurse(frame, depth + 1) + frame[4095];
}

void arch_fault_write(uintptr_t address) { *(volatile uint32_t *)address = 0; }

uint8_t arch_fault_read(uintptr_t address) { return *(volatile uint8_t *)address; }

#endif
