// Zero fill on RISC-V 64: byte stores up to an 8-byte boundary, then 64 bytes per
// iteration with doubleword stores, then the tail. (The base ISA has no cache-block
// zero instruction; Zicboz is optional.)
#include "ArchSupport.h"

#ifdef ARCH_RISCV64

void bzero(void *ptr, size_t size) {
  uint8_t *p = ptr;
  while (size > 0 && ((uintptr_t)p & 7) != 0) {
    *p++ = 0;
    size--;
  }
  uint64_t *words = (uint64_t *)p;
  for (; size >= 64; size -= 64, words += 8) {
    words[0] = 0; words[1] = 0; words[2] = 0; words[3] = 0;
    words[4] = 0; words[5] = 0; words[6] = 0; words[7] = 0;
  }
  for (; size >= 8; size -= 8) *words++ = 0;
  p = (uint8_t *)words;
  while (size-- > 0) *p++ = 0;
}

#endif
