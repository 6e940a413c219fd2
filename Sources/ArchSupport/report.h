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

#endif
