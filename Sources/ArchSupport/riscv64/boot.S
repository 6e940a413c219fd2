// Start-up on RISC-V 64 under an SBI firmware (OpenSBI on QEMU's virt): the firmware
// enters the image in S-mode at its first byte with a0 = the hart id and a1 = the
// device tree, one hart only (the others stay stopped until the kernel starts them
// with the SBI's HSM extension). Masks interrupts, installs the trap vector (stvec)
// and the exception stack (sscratch), points tp at the per-CPU block, zeroes .bss,
// turns on the MMU (the early Sv39 identity map, mmu.c), probes for semihosting, then
// calls the Swift entry point `main`. Started harts enter at arch_secondary_entry.
#if defined(__riscv) && __riscv_xlen == 64 && !defined(__linux__)

#include "ArchCores.h"
#include "../cpu_block.h"

#define SSTATUS_SIE (1 << 1)

  .section .text.boot, "ax"
  .option norvc
  .global _start
_start:
  // The Linux RISC-V image header (Documentation/arch/riscv/boot-image-header.rst), so
  // that a raw copy (`make image`) is booted like a Linux Image; as an ELF, _start just
  // jumps on.
  j entry                               // code0 (4 bytes: norvc)
  .word 0                               // code1
  .dword 0x200000                       // text_offset: 2 MiB above the RAM base
  .dword __image_size                   // image_size
  .dword 0                              // flags: little endian
  .word 2                               // version 0.2
  .word 0                               // reserved
  .dword 0                              // reserved
  .ascii "RISCV\0\0\0"                  // magic (deprecated)
  .ascii "RSC\x05"                      // magic2
  .word 0                               // reserved (PE header offset)
  .option rvc
entry:
  csrw sie, zero                        // no interrupts: the kernel polls
  csrci sstatus, SSTATUS_SIE
  mv s1, a0                             // hart id
  mv s2, a1                             // device tree
  // Traps first: from here on any fault is reported (trap.S).
  lla t0, arch_trap_entry
  csrw stvec, t0
  lla t0, arch_exception_stacks + ARCH_EXCEPTION_STACK_BYTES
  csrw sscratch, t0
  // The boot hart's per-CPU block, before any C or Swift code (ks_current_cpu reads
  // it). Its `cpu` word is 0 before and after the .bss clear below.
  lla tp, arch_cpus
  lla sp, __stack_top
  mv fp, zero                           // backtraces end here

  lla t0, __bss_start
  lla t1, __bss_end
1:
  bgeu t0, t1, 2f
  sd zero, 0(t0)
  sd zero, 8(t0)
  addi t0, t0, 16
  j 1b
2:
  lla t0, arch_boot_el
  li t1, 1                              // S-mode
  sd t1, 0(t0)
  lla t0, arch_boot_x0
  sd s2, 0(t0)
  // Block 0: the boot stack with its canary, the exception stack, online.
  lla t0, __stack_bottom
  sd t0, CPU_BLOCK_STACK_BOTTOM(tp)
  li t1, ARCH_STACK_CANARY
  sd t1, 0(t0)
  lla t0, __stack_top
  sd t0, CPU_BLOCK_STACK_TOP(tp)
  lla t0, arch_exception_stacks + ARCH_EXCEPTION_STACK_BYTES
  sd t0, CPU_BLOCK_EXCEPTION_STACK_TOP(tp)
  li t1, 1
  sw t1, CPU_BLOCK_ENTRY_EL(tp)
  sd s1, CPU_BLOCK_MPIDR(tp)
  li t1, ARCH_CPU_ONLINE
  sw t1, CPU_BLOCK_STATE(tp)

  call arch_mmu_enable
  call arch_probe_semihosting           // may trap once, into our own vector
  li a0, 0
  li a1, 0
  call main
  call arch_exit                        // main's return value is the exit status
3:
  wfi
  j 3b

// A hart started with SBI HSM hart_start: S-mode, MMU off, a0 = its hart id, a1 = the
// opaque value, here its per-CPU block (arch_cpu_start). Installs the trap vector, its
// exception stack (sscratch), turns the MMU on with the boot hart's tables, sets tp
// and its kernel stack, then runs arch_secondary_main (Arch/SecondaryCores.swift) and, when
// that returns, arch_cpu_park.
  .global arch_secondary_entry
  .type arch_secondary_entry, %function
  .balign 4
arch_secondary_entry:
  csrw sie, zero
  csrci sstatus, SSTATUS_SIE
  lla t0, arch_trap_entry
  csrw stvec, t0
  beqz a1, halt_hart
  ld t0, CPU_BLOCK_MPIDR(a1)
  bne t0, a0, halt_hart                 // not this hart's block: nowhere to run
  ld t1, CPU_BLOCK_STACK_TOP(a1)
  beqz t1, halt_hart                    // not prepared: nowhere to run
  // The MMU first, with the tables the boot hart runs on (mmu.c's arch_satp): the
  // kernel stack may lie in vmalloc space, which only they map.
  lla t0, arch_satp
  ld t0, 0(t0)
  sfence.vma
  csrw satp, t0
  sfence.vma
  mv sp, t1
  ld t0, CPU_BLOCK_EXCEPTION_STACK_TOP(a1)
  csrw sscratch, t0
  mv tp, a1
  mv fp, zero
  li t0, 1
  sw t0, CPU_BLOCK_ENTRY_EL(tp)
  ld a0, CPU_BLOCK_CPU(tp)
  call arch_secondary_main
  call arch_cpu_park

halt_hart:
  wfi
  j halt_hart

  .section .bss
  .balign 8
  .global arch_boot_el
arch_boot_el: .dword 0
  .global arch_boot_x0
arch_boot_x0: .dword 0

#endif
