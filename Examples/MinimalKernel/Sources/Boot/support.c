// The C symbols an Embedded Swift kernel on SwiftKernelMemory provides: memset, memcpy,
// memmove, memcmp, putchar and arc4random_buf; and what the example's Swift code asks of
// its start-up code (Boot.h). Byte loops: enough for an example.
#include "Boot.h"

uint64_t boot_device_tree;  // boot.S stores x0 here
extern char __kernel_start[], __end[], __stack_bottom[], __stack_top[];

uintptr_t boot_device_tree_address(void) { return (uintptr_t)boot_device_tree; }
uintptr_t boot_kernel_start(void) { return (uintptr_t)__kernel_start; }
uintptr_t boot_kernel_end(void) { return (uintptr_t)__end; }

void *memset(void *dest, int value, size_t count) {
  unsigned char *d = dest;
  while (count--) *d++ = (unsigned char)value;
  return dest;
}

void *memcpy(void *restrict dest, const void *restrict src, size_t count) {
  unsigned char *d = dest;
  const unsigned char *s = src;
  while (count--) *d++ = *s++;
  return dest;
}

void *memmove(void *dest, const void *src, size_t count) {
  unsigned char *d = dest;
  const unsigned char *s = src;
  if (d < s) {
    while (count--) *d++ = *s++;
  } else {
    while (count--) d[count] = s[count];
  }
  return dest;
}

int memcmp(const void *a, const void *b, size_t count) {
  const unsigned char *x = a, *y = b;
  for (size_t i = 0; i < count; i++) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

// The PL011 UART of QEMU virt: data register at +0, "transmit FIFO full" in FR (+0x18).
#define UART0 0x09000000ul
int putchar(int c) {
  volatile uint32_t *uart = (volatile uint32_t *)UART0;
  while (uart[0x18 / 4] & (1 << 5)) {
  }
  uart[0] = (uint32_t)(unsigned char)c;
  return c;
}

// Seeds for Swift's hashing (Dictionary, Set). Not random: a real kernel draws these
// from an entropy source (RNDR, a TRNG, the device tree's /chosen/rng-seed).
void arc4random_buf(void *buffer, size_t count) {
  static uint64_t state = 0x9e3779b97f4a7c15ull;
  unsigned char *out = buffer;
  for (size_t i = 0; i < count; i++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    out[i] = (unsigned char)(state >> 56);
  }
}

void boot_zero(void *pointer, long count) { memset(pointer, 0, (size_t)count); }

size_t boot_stack_used(void) {
  const uint64_t *word = (const uint64_t *)__stack_bottom;
  while ((const char *)word < __stack_top && *word == 0x5354414b5354414bull) word++;
  return (size_t)(__stack_top - (const char *)word);
}

// Semihosting SYS_EXIT with ADP_Stopped_ApplicationExit: QEMU (-semihosting) ends with `code`.
_Noreturn void kernel_exit(int code) {
  uint64_t block[2] = {0x20026, (uint64_t)code};
  register uint64_t operation __asm__("x0") = 0x18;
  register uint64_t parameter __asm__("x1") = (uint64_t)block;
  __asm__ volatile("hlt #0xf000" : : "r"(operation), "r"(parameter) : "memory");
  for (;;) __asm__ volatile("wfi");
}
