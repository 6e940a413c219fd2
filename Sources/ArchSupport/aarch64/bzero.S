// void bzero(void *ptr, size_t size)
// Zeroes with 16-byte `stp xzr, xzr` stores: an unaligned head and tail store, an
// aligned loop between them, and `dc zva` for whole blocks when the run is long
// enough and DCZID_EL0 allows it. Sizes under 16 use two overlapping 8/4/2-byte
// stores or one byte. Never writes outside [ptr, ptr + size). Needs the MMU on
// (Normal memory) for unaligned stores and `dc zva`.
#if defined(__aarch64__) && !defined(__linux__)

#define ZVA_MIN_SIZE 256
#define DCZID_DZP_BIT 4

  .text
  .global bzero
  .type bzero, %function
  .balign 16
bzero:
  add x2, x0, x1                        // x2 = end
  cmp x1, #16
  b.lo .Lsmall
  stp xzr, xzr, [x0]                    // head: [ptr, ptr+16)
  stp xzr, xzr, [x2, #-16]              // tail: [end-16, end)
  cmp x1, #32
  b.ls .Lret
  add x3, x0, #16
  and x3, x3, #~15                      // x3 = cursor, 16-aligned, <= ptr+16
  sub x4, x2, #16                       // x4 = tail start: fill [x3, x4)
  cmp x1, #ZVA_MIN_SIZE
  b.lo .Lloop16
  mrs x5, dczid_el0
  tbnz x5, #DCZID_DZP_BIT, .Lloop16
  and x5, x5, #15
  mov x6, #4
  lsl x6, x6, x5                        // x6 = zva block size in bytes
  sub x7, x6, #1
  add x8, x3, x7
  bic x8, x8, x7                        // x8 = first block boundary >= x3
  add x9, x8, x6
  cmp x9, x4
  b.hi .Lloop16                         // no whole block before the tail
.Lalign:
  cmp x3, x8
  b.hs .Lzva
  stp xzr, xzr, [x3], #16
  b .Lalign
.Lzva:
  dc zva, x3
  add x3, x3, x6
  add x9, x3, x6
  cmp x9, x4
  b.ls .Lzva
.Lloop16:
  cmp x3, x4
  b.hs .Lret
  stp xzr, xzr, [x3], #16
  b .Lloop16
.Lret:
  ret

.Lsmall:                                // size < 16
  cmp x1, #8
  b.lo 1f
  str xzr, [x0]
  str xzr, [x2, #-8]
  ret
1:
  cmp x1, #4
  b.lo 2f
  str wzr, [x0]
  str wzr, [x2, #-4]
  ret
2:
  cbz x1, .Lret
  strb wzr, [x0]
  cmp x1, #2
  b.lo .Lret
  strh wzr, [x2, #-2]
  ret
  .size bzero, . - bzero

#endif
