// The RISC-V semihosting call (the RISC-V Semihosting spec): `slli x0, x0, 0x1f;
// ebreak; srai x0, x0, 7`, uncompressed and inside one page, with the operation in a0
// and its parameter in a1; the answer comes back in a0. Without a semihosting host the
// ebreak is an ordinary breakpoint exception, which the probe (exception.c) steps over.
#if defined(__riscv) && __riscv_xlen == 64 && !defined(__linux__)

  .text
  .global arch_semihosting_call
  .type arch_semihosting_call, %function
  .option push
  .option norvc
  .balign 16
arch_semihosting_call:                  // a0 = operation, a1 = parameter
  slli x0, x0, 0x1f
  .global arch_semihosting_break
arch_semihosting_break:
  ebreak
  srai x0, x0, 7
  ret
  .option pop

#endif
