// Allocation-free, lock-free output for the reports C code prints (exception reports,
// stack canaries): usable on any core at any time, even with the heap broken. report.c.
#ifndef ARCH_REPORT_H
#define ARCH_REPORT_H

#include <stdint.h>

/// Writes a NUL-terminated string.
void report_put(const char *text);

/// Writes `value` as `0x` and its significant hex digits (at least one).
void report_hex(uint64_t value);

/// Writes `value` as `0x` and 16 hex digits.
void report_padded_hex(uint64_t value);

/// Writes `value` in decimal.
void report_decimal(unsigned value);

struct arch_cpu;

/// The trap reports' shared parts (trap_report.c). The calling core's per-CPU block.
const struct arch_cpu *report_this_cpu(void);
/// Sleeps for good (`wfi`).
void report_halt(void) __attribute__((noreturn));
/// Starts a report: a second exception while this core reports one prints one line
/// (`at pc (syndrome_name syndrome)`) and ends the run; otherwise waits until no other
/// core reports, then checks the stack canaries.
void report_begin(uint64_t pc, const char *syndrome_name, uint64_t syndrome);
/// Prints `  backtrace: pc return_address` and the return addresses of the frame
/// records from `fp` on, within this core's kernel stack.
void report_backtrace(uint64_t pc, uint64_t return_address, uint64_t fp);
/// Ends a report: exit status 4 with semihosting, else one line and halt.
void report_end(void) __attribute__((noreturn));
/// The test kernel's stack overflow: recurses with a 4 KiB frame until the stack runs
/// into its guard page.
uint64_t arch_fault_recurse(volatile uint8_t *caller, uint64_t depth);

#endif
