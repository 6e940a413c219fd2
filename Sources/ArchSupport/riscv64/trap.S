// The trap vector (stvec, direct mode): every synchronous exception and interrupt of
// S-mode arrives here. It switches to the hart's exception stack (sscratch holds its
// top while the kernel runs), so that a kernel stack overflow into its guard page is
// still reported, saves the registers, sepc, sstatus, scause and stval in a frame, and
// calls arch_exception (exception.c) with it. That returns only for a handled
// semihosting probe or a page fault it retries once: then the registers are restored
// and sret resumes at sepc.
#if defined(__riscv) && __riscv_xlen == 64 && !defined(__linux__)

#include "ArchCores.h"

// The frame: x0-x31 (x0's slot unused, x2's slot the interrupted sp), then the CSRs.
#define FRAME_SEPC 256
#define FRAME_SSTATUS 264
#define FRAME_SCAUSE 272
#define FRAME_STVAL 280
#define FRAME_BYTES 288

  .text
  .global arch_trap_entry
  .type arch_trap_entry, %function
  .balign 4
arch_trap_entry:
  csrrw sp, sscratch, sp                // sp: the exception stack; sscratch: the interrupted sp
  addi sp, sp, -FRAME_BYTES
  sd x1, 8(sp)
  sd x3, 24(sp)
  sd x4, 32(sp)
  sd x5, 40(sp)
  sd x6, 48(sp)
  sd x7, 56(sp)
  sd x8, 64(sp)
  sd x9, 72(sp)
  sd x10, 80(sp)
  sd x11, 88(sp)
  sd x12, 96(sp)
  sd x13, 104(sp)
  sd x14, 112(sp)
  sd x15, 120(sp)
  sd x16, 128(sp)
  sd x17, 136(sp)
  sd x18, 144(sp)
  sd x19, 152(sp)
  sd x20, 160(sp)
  sd x21, 168(sp)
  sd x22, 176(sp)
  sd x23, 184(sp)
  sd x24, 192(sp)
  sd x25, 200(sp)
  sd x26, 208(sp)
  sd x27, 216(sp)
  sd x28, 224(sp)
  sd x29, 232(sp)
  sd x30, 240(sp)
  sd x31, 248(sp)
  csrr t0, sscratch
  sd t0, 16(sp)                         // the interrupted sp
  addi t1, sp, FRAME_BYTES
  csrw sscratch, t1                     // re-armed for a trap inside the report
  csrr t0, sepc
  sd t0, FRAME_SEPC(sp)
  csrr t0, sstatus
  sd t0, FRAME_SSTATUS(sp)
  csrr t0, scause
  sd t0, FRAME_SCAUSE(sp)
  csrr t0, stval
  sd t0, FRAME_STVAL(sp)
  mv a0, sp
  mv fp, zero                           // the report walks the interrupted frames itself
  call arch_exception
  ld t0, FRAME_SEPC(sp)
  csrw sepc, t0
  ld x1, 8(sp)
  ld x3, 24(sp)
  ld x4, 32(sp)
  ld x5, 40(sp)
  ld x6, 48(sp)
  ld x7, 56(sp)
  ld x8, 64(sp)
  ld x9, 72(sp)
  ld x10, 80(sp)
  ld x11, 88(sp)
  ld x12, 96(sp)
  ld x13, 104(sp)
  ld x14, 112(sp)
  ld x15, 120(sp)
  ld x16, 128(sp)
  ld x17, 136(sp)
  ld x18, 144(sp)
  ld x19, 152(sp)
  ld x20, 160(sp)
  ld x21, 168(sp)
  ld x22, 176(sp)
  ld x23, 184(sp)
  ld x24, 192(sp)
  ld x25, 200(sp)
  ld x26, 208(sp)
  ld x27, 216(sp)
  ld x28, 224(sp)
  ld x29, 232(sp)
  ld x30, 240(sp)
  ld x31, 248(sp)
  ld sp, 16(sp)
  sret

  // The boot hart's exception stack; a started hart's comes from the page frames.
  .section .bss
  .balign 16
  .global arch_exception_stacks
arch_exception_stacks:
  .space ARCH_EXCEPTION_STACK_BYTES

#endif
