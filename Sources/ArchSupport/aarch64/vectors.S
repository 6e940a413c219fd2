// EL1 exception vectors, installed by boot.S (VBAR_EL1) before any Swift code runs.
//
// The kernel runs on SP_EL0 (boot.S selects it), so every exception it takes arrives in
// the "current EL, SP_EL0" group and runs on SP_EL1: a separate 16 KiB exception stack per core.
// A kernel stack that is gone cannot stop the report. An exception while the handler
// runs arrives in the "current EL, SP_ELx" group: arch_exception sees its recursion
// guard, prints one line and stops.
//
// Each entry pushes a frame (x0-x30, the interrupted SP, ELR, SPSR, ESR, FAR) and calls
// arch_exception(kind, frame) (exception.c). kind = group * 4 + type, type 0 synchronous,
// 1 IRQ, 2 FIQ, 3 SError. When it returns (a handled probe), the frame's ELR is resumed.
#if defined(__aarch64__) && !defined(__linux__)

#include "ArchCores.h"

#define FRAME_BYTES 288                  // 36 words

.macro ENTRY kind
  .balign 0x80
  sub sp, sp, #FRAME_BYTES
  stp x0, x1, [sp, #0]
  mov x0, #\kind
  b exception_common
.endm

  .section .text.vectors, "ax"
  .balign 0x800
  .global arch_exception_vectors
arch_exception_vectors:
  ENTRY 0                                // current EL, SP_EL0: synchronous
  ENTRY 1                                //   IRQ
  ENTRY 2                                //   FIQ
  ENTRY 3                                //   SError
  ENTRY 4                                // current EL, SP_ELx (inside the handler, or early boot)
  ENTRY 5
  ENTRY 6
  ENTRY 7
  ENTRY 8                                // lower EL, AArch64
  ENTRY 9
  ENTRY 10
  ENTRY 11
  ENTRY 12                               // lower EL, AArch32
  ENTRY 13
  ENTRY 14
  ENTRY 15

exception_common:
  stp x2, x3, [sp, #16]
  stp x4, x5, [sp, #32]
  stp x6, x7, [sp, #48]
  stp x8, x9, [sp, #64]
  stp x10, x11, [sp, #80]
  stp x12, x13, [sp, #96]
  stp x14, x15, [sp, #112]
  stp x16, x17, [sp, #128]
  stp x18, x19, [sp, #144]
  stp x20, x21, [sp, #160]
  stp x22, x23, [sp, #176]
  stp x24, x25, [sp, #192]
  stp x26, x27, [sp, #208]
  stp x28, x29, [sp, #224]
  // The interrupted SP: SP_EL0 for the kernel's own exceptions, else this stack's
  // value before the frame.
  mrs x2, sp_el0
  tst x0, #4
  b.eq 1f
  add x2, sp, #FRAME_BYTES
1:
  stp x30, x2, [sp, #240]
  mrs x2, elr_el1
  mrs x3, spsr_el1
  stp x2, x3, [sp, #256]
  mrs x2, esr_el1
  mrs x3, far_el1
  stp x2, x3, [sp, #272]
  mov x1, sp
  mov x29, xzr                           // the handler's backtrace starts at the frame's x29
  bl arch_exception
  // Returned: resume at the frame's ELR (a probe that was handled).
  ldr x2, [sp, #256]
  msr elr_el1, x2
  ldp x2, x3, [sp, #16]
  ldp x4, x5, [sp, #32]
  ldp x6, x7, [sp, #48]
  ldp x8, x9, [sp, #64]
  ldp x10, x11, [sp, #80]
  ldp x12, x13, [sp, #96]
  ldp x14, x15, [sp, #112]
  ldp x16, x17, [sp, #128]
  ldp x18, x19, [sp, #144]
  ldp x20, x21, [sp, #160]
  ldp x22, x23, [sp, #176]
  ldp x24, x25, [sp, #192]
  ldp x26, x27, [sp, #208]
  ldp x28, x29, [sp, #224]
  ldr x30, [sp, #240]
  ldp x0, x1, [sp, #0]
  add sp, sp, #FRAME_BYTES
  eret

  // The boot core's exception stack (boot.S); a started core's comes from the page
  // frames with its kernel stack (Arch/SecondaryCores.swift, smp.c's arch_cpu_prepare),
  // so that more cores cost .bss nothing.
  .section .bss
  .balign 16
  .global arch_exception_stacks
arch_exception_stacks:
  .space ARCH_EXCEPTION_STACK_BYTES

#endif
