// The output helpers of report.h, over putchar (libc.c).
#include "ArchSupport.h"
#include "report.h"

#ifdef ARCH_BARE_METAL

static const char hex_digits[] = "0123456789abcdef";

void report_put(const char *text) {
  while (*text) putchar(*text++);
}

void report_hex(uint64_t value) {
  report_put("0x");
  int shift = 60;
  while (shift > 0 && ((value >> shift) & 0xf) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) putchar(hex_digits[(value >> shift) & 0xf]);
}

void report_padded_hex(uint64_t value) {
  report_put("0x");
  for (int shift = 60; shift >= 0; shift -= 4) putchar(hex_digits[(value >> shift) & 0xf]);
}

void report_decimal(unsigned value) {
  char digits[10];  // 4294967295
  int count = 0;
  do { digits[count++] = (char)('0' + value % 10); value /= 10; } while (value);
  while (count) putchar(digits[--count]);
}

#endif
