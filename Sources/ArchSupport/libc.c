// The C-library symbols Embedded Swift and clang expect on bare metal: memset,
// memcpy, memmove, memcmp, putchar and arc4random_buf. (posix_memalign, free and
// friends come from the kernel heap, in MemInit.) Word-at-a-time where alignment
// allows; zero fills go to the assembly bzero.
#include "ArchSupport.h"

#ifdef ARCH_BARE_METAL

void *memset(void *dest, int value, size_t count) {
  if (value == 0) {
    bzero(dest, count);
    return dest;
  }
  uint8_t *d = dest;
  uint64_t pattern = (uint8_t)value * 0x0101010101010101ull;
  while (count > 0 && ((uintptr_t)d & 7)) { *d++ = (uint8_t)value; count--; }
  for (; count >= 8; count -= 8, d += 8) *(uint64_t *)d = pattern;
  while (count--) *d++ = (uint8_t)value;
  return dest;
}

void arch_zero_bytes(void *ptr, size_t size) {
  volatile uint8_t *p = ptr;
  for (size_t i = 0; i < size; i++) p[i] = 0;
}

void *memcpy(void *restrict dest, const void *restrict src, size_t count) {
  uint8_t *d = dest;
  const uint8_t *s = src;
  if ((((uintptr_t)d | (uintptr_t)s) & 7) == 0) {
    for (; count >= 8; count -= 8, d += 8, s += 8) *(uint64_t *)d = *(const uint64_t *)s;
  }
  while (count--) *d++ = *s++;
  return dest;
}

void *memmove(void *dest, const void *src, size_t count) {
  uint8_t *d = dest;
  const uint8_t *s = src;
  if (d == s || count == 0) return dest;
  if (d < s || d >= s + count) return memcpy(dest, src, count);
  while (count--) d[count] = s[count];
  return dest;
}

int memcmp(const void *a, const void *b, size_t count) {
  const uint8_t *x = a, *y = b;
  for (size_t i = 0; i < count; i++) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

size_t strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

// While a debugger command runs (KernelBoot/DebugCommands.swift), output goes to this
// buffer instead of the UART, and gdb reads it from memory (scripts/gdb/kmem.py).
static char arch_debug_text[16384];
static size_t debug_length;

const char *arch_debug_buffer(void) { return arch_debug_text; }
static int debug_capture;

void arch_debug_capture(int on) {
  debug_capture = on;
  if (on) debug_length = 0;
  arch_debug_text[debug_length] = 0;
}

int putchar(int c) {
  if (debug_capture) {
    if (debug_length + 1 < sizeof arch_debug_text) {
      arch_debug_text[debug_length++] = (char)c;
      arch_debug_text[debug_length] = 0;
    }
    return c;
  }
  if (c == '\n') arch_uart_putc('\r');
  arch_uart_putc((uint8_t)c);
  return c;
}

// The console lock's words (Arch/ConsoleLock.swift): zero is a free TicketLock.
static uint64_t console_lock_words[4];

void *arch_console_lock_storage(void) { return console_lock_words; }

// Hashing seeds for Swift's Dictionary and Set. A kernel has no entropy source
// this early; a counter-seeded xorshift is enough to vary the seed between boots.
void arc4random_buf(void *buffer, size_t count) {
  static uint64_t state;
  if (state == 0) state = arch_counter() | 1;
  uint8_t *out = buffer;
  for (size_t i = 0; i < count; i++) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    out[i] = (uint8_t)state;
  }
}

#endif
