// The installed CPU numbering and its slow paths: the one-CPU cases, a kernel's
// function, and numbers out of range. Both builds; hosted ones start with thread
// numbers (cpu.c), bare-metal ones with nothing installed.
#include "KernelSyncAtomics.h"

#if defined(__linux__) || defined(__APPLE__)
struct ks_cpu_numbering ks_cpu_numbering = {0, KS_CPU_THREADS, 0x80000000u, 0};
#else
struct ks_cpu_numbering ks_cpu_numbering = {0, KS_CPU_UNSET, 1, 0};
#endif

// The C library's (hosted) or the kernel's (bare metal: part of the contract).
int putchar(int c);

static uint32_t said_unset, said_refused;

static void say(const char *text) {
  while (*text) putchar(*text++);
}

static void say_hex(uint32_t value) {
  say("0x");
  for (int shift = 28; shift >= 0; shift -= 4) putchar("0123456789abcdef"[(value >> shift) & 15]);
}

unsigned ks_cpu_number_refused(unsigned number) {
  uint32_t limit = ks_cpu_numbering.limit;
  if (ks_compare_exchange(&said_refused, 0, 1)) {
    say("\nCPU.current: number out of range ");
    say_hex(number);
    say(" (CPU.install allows 0 ..< ");
    say_hex(limit);
    say("; read as the limit)\n");
  }
  return limit;
}

unsigned ks_current_cpu_slow(void) {
  switch (ks_load_relaxed(&ks_cpu_numbering.kind)) {
  case KS_CPU_FUNCTION: {
    unsigned number = ks_cpu_numbering.function();
    if (__builtin_expect(number < ks_cpu_numbering.limit, 1)) return number;
    return ks_cpu_number_refused(number);
  }
  case KS_CPU_UNSET:
    if (ks_compare_exchange(&said_unset, 0, 1)) {
      say("\nCPU.current: no CPU numbering installed (CPU.install); running as one CPU 0x0\n");
    }
    return 0;
  default:
    return 0;
  }
}
