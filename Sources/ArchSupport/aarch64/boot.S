// Start-up: pick the boot core by its MPIDR affinity (0) and hold the other cores (the
// spin table on the Pis, the holding pen on virt), drop to EL1, enable
// FP/SIMD, install the exception vectors and stacks, point TPIDR_EL1 at the per-CPU
// block, zero .bss, turn on the MMU (identity map), probe for semihosting, then call the
// Swift entry point `main`. Started cores enter at arch_secondary_entry and take the
// same path to EL1, then run the entry Platform.startSecondaryCores gave them.
#if defined(__aarch64__) && !defined(__linux__)

#include "ArchCores.h"
#include "../cpu_block.h"

#define SCR_EL3_NS      (1 << 0)
#define SCR_EL3_RW      (1 << 10)
#define HCR_EL2_RW      (1 << 31)
#define SPSR_EL1H_MASKED 0x3c5          // EL1h, D/A/I/F masked
#define CPACR_FPEN_ALL  (3 << 20)
#define CPTR_EL2_RES1   0x33ff
#define SCTLR_EL1_RES1  0x30d00800      // MMU, caches and alignment checks off
#define CNTHCTL_EL1_COUNTER_ACCESS 3    // EL1PCTEN | EL1PCEN

  .section .text.boot, "ax"
  .global _start
// The arm64 Linux image header (Documentation/arch/arm64/booting.rst), so that a raw
// copy of the image (`make image`) is booted like a Linux Image by QEMU and loaders:
// placed text_offset above the RAM base, where it is linked, entered with x0 = DTB,
// with -initrd loaded and named in /chosen. Booted as an ELF, _start just branches on.
_start:
  b entry                               // code0
  .word 0                               // code1
  .quad 0x200000                        // text_offset: 2 MiB above the RAM base
  .quad __image_size                    // image_size, .bss and the boot stack included
  .quad 0                               // flags: little endian
  .quad 0, 0, 0                         // reserved
  .ascii "ARM\x64"                      // magic
  .word 0                               // reserved
entry:
  mov x20, x0                           // x0 at entry (DTB pointer on some loaders)
  // The image is linked at KERNEL_BASE and uses absolute addresses: refuse to run
  // anywhere else, with one line on the UART instead of a reboot loop.
  adr x1, _start                        // where it runs
  ldr x2, =_start                       // where it was linked
  cmp x1, x2
  b.ne wrong_address
  // The boot core is the one whose MPIDR affinity (Aff0-Aff3) is 0; every other core
  // that enters here waits until the boot core releases it.
  mrs x1, mpidr_el1
  ldr x3, =ARCH_MPIDR_AFFINITY_MASK
  and x1, x1, x3
  cbz x1, primary
#if defined(BOARD_VIRT)
  // virt starts the other cores with PSCI CPU_ON at arch_secondary_entry when its tree
  // names PSCI; without firmware (secure=on) QEMU starts every core here instead. Such
  // a core says it is here (a plain store of 1, in .data so that the boot core's .bss
  // clear keeps it) and waits in the holding pen until the boot core prepares a block
  // with its MPIDR (Platform.startSecondaryCores) and sends an event.
  ldr x2, =arch_pen_waiting
  mov w3, #1
  str w3, [x2]
holding_pen:
  wfe
  bl find_block
  cbz x21, holding_pen
  b arch_secondary_entry
#else
  // The Pis' spin table, as the firmware's armstub (and QEMU's boot stub for a raw
  // image) runs it; QEMU starts all four cores here for an ELF image. Core n (MPIDR
  // affinity n < ARCH_SPIN_TABLE_CORES) waits for an entry address in its slot and
  // jumps to it, still at the entry exception level with the MMU off:
  // Platform.startSecondaryCores writes arch_secondary_entry there, cleans it to memory
  // and sends an event (`sev`).
  cmp x1, #ARCH_SPIN_TABLE_CORES
  b.hs halt_core
  mov x2, #ARCH_SPIN_TABLE_STRIDE
  mov x3, #ARCH_SPIN_TABLE_BASE
  madd x2, x1, x2, x3                   // x2 = this core's slot
spin_table:
  wfe
  ldr x3, [x2]
  cbz x3, spin_table
  br x3
#endif

// x21 = the per-CPU block prepared for the calling core (its `mpidr` is this core's
// MPIDR affinity and its state is released), or 0. Reads the blocks straight from
// memory (MMU off; arch_cpu_prepare cleaned them there). Uses x1-x5, no stack.
find_block:
  mrs x1, mpidr_el1
  ldr x3, =ARCH_MPIDR_AFFINITY_MASK
  and x1, x1, x3
  ldr x21, =arch_cpus
  mov x2, #ARCH_MAX_CPUS
1:
  ldr x3, [x21, #CPU_BLOCK_MPIDR]
  ldr w4, [x21, #CPU_BLOCK_STATE]
  cmp x3, x1
  ccmp w4, #ARCH_CPU_RELEASED, #0, eq   // both equal: found
  b.eq 2f
  add x21, x21, #CPU_BLOCK_BYTES
  subs x2, x2, #1
  b.ne 1b
  mov x21, #0
2:
  ret

// A core with nothing to do: sleeps for good (wfi sleeps under QEMU too; wfe only
// yields there).
halt_core:
  wfi
  b halt_core

primary:
  mrs x19, CurrentEL
  lsr x19, x19, #2                      // x19 = entry exception level
  bl drop_to_el1
  mov x2, #CPACR_FPEN_ALL
  msr cpacr_el1, x2
  // Exception vectors first: from here on any fault is reported (vectors.S).
  ldr x2, =arch_exception_vectors
  msr vbar_el1, x2
  isb
  // The boot core's per-CPU block, before any C or Swift code (ks_current_cpu reads
  // it). Its `cpu` word is 0 before and after the .bss clear below.
  ldr x21, =arch_cpus
  msr tpidr_el1, x21
  // SP_EL1 is the exception stack; the kernel runs on SP_EL0 with the boot stack.
  ldr x2, =arch_exception_stacks + ARCH_EXCEPTION_STACK_BYTES
  mov sp, x2
  ldr x2, =__stack_top
  msr sp_el0, x2
  msr spsel, #0

  // .bss with aligned 16-byte stores: the MMU is still off, so memory is Device
  // memory and `dc zva` or unaligned stores would fault.
  ldr x2, =__bss_start
  ldr x3, =__bss_end
1:
  cmp x2, x3
  b.hs 2f
  stp xzr, xzr, [x2], #16
  b 1b
2:
  ldr x2, =arch_boot_el
  str x19, [x2]
  ldr x2, =arch_boot_x0
  str x20, [x2]
  // Block 0: the boot stack with its canary, the exception stack, online.
  ldr x2, =__stack_bottom
  str x2, [x21, #CPU_BLOCK_STACK_BOTTOM]
  ldr x3, =ARCH_STACK_CANARY
  str x3, [x2]
  ldr x2, =__stack_top
  str x2, [x21, #CPU_BLOCK_STACK_TOP]
  ldr x2, =arch_exception_stacks + ARCH_EXCEPTION_STACK_BYTES
  str x2, [x21, #CPU_BLOCK_EXCEPTION_STACK_TOP]
  str w19, [x21, #CPU_BLOCK_ENTRY_EL]
  mrs x2, midr_el1
  str x2, [x21, #CPU_BLOCK_MIDR]
  mrs x2, mpidr_el1
  ldr x3, =ARCH_MPIDR_AFFINITY_MASK
  and x2, x2, x3
  str x2, [x21, #CPU_BLOCK_MPIDR]
  mov w2, #ARCH_CPU_ONLINE
  str w2, [x21, #CPU_BLOCK_STATE]

  bl arch_mmu_enable
  bl arch_probe_semihosting             // may trap once, into our own vectors
  mov x0, #0
  mov x1, #0
  bl main
  bl arch_exit                          // main's return value is the exit status
3:
  b 3b

// A started core (PSCI CPU_ON, a spin table, the holding pen), at EL3, EL2 or EL1
// with the MMU off: the boot core's path to EL1, FP/SIMD, the vectors, its per-CPU
// block (TPIDR_EL1: the released block with its MPIDR affinity), the exception and kernel stacks arch_cpu_prepare put there, the
// MMU with the boot core's tables; then arch_secondary_main (Arch/SecondaryCores.swift)
// and, when that returns, arch_cpu_park.
  .global arch_secondary_entry
  .type arch_secondary_entry, %function
arch_secondary_entry:
  mrs x19, CurrentEL
  lsr x19, x19, #2                      // x19 = entry exception level
  bl drop_to_el1
  mov x2, #CPACR_FPEN_ALL
  msr cpacr_el1, x2
  ldr x2, =arch_exception_vectors
  msr vbar_el1, x2
  isb
  bl find_block                         // by this core's MPIDR affinity
  cbz x21, halt_core                    // no block released for it: nowhere to run
  ldr x2, [x21, #CPU_BLOCK_STACK_TOP]
  cbz x2, halt_core                     // not prepared: nowhere to run
  msr tpidr_el1, x21
  msr sp_el0, x2
  ldr x2, [x21, #CPU_BLOCK_EXCEPTION_STACK_TOP]
  mov sp, x2
  msr spsel, #0
  mov x29, xzr                          // backtraces end here
  bl arch_mmu_enable_secondary
  str w19, [x21, #CPU_BLOCK_ENTRY_EL]   // with the MMU on: cacheable, coherent
  mrs x2, midr_el1
  str x2, [x21, #CPU_BLOCK_MIDR]
  ldr x0, [x21, #CPU_BLOCK_CPU]
  bl arch_secondary_main
  bl arch_cpu_park

// Drops from EL3 or EL2 to EL1h (AArch64, D/A/I/F masked) and continues there at the
// return address (x30); at EL1 it just returns. SCTLR_EL1 gets its reset value first
// (MMU and caches off). Every core takes this path. Uses x2 and x3 only, no stack.
drop_to_el1:
  ldr x2, =SCTLR_EL1_RES1
  msr sctlr_el1, x2
  mrs x3, CurrentEL
  lsr x3, x3, #2
  cmp x3, #3
  b.eq from_el3
  cmp x3, #2
  b.eq from_el2
  ret

from_el3:
  msr cptr_el3, xzr                     // no FP/SIMD traps to EL3
  mov x2, #(SCR_EL3_NS | SCR_EL3_RW)
  msr scr_el3, x2
  mov x2, #HCR_EL2_RW                   // EL1 is AArch64
  msr hcr_el2, x2
  mov x2, #SPSR_EL1H_MASKED
  msr spsr_el3, x2
  msr elr_el3, x30
  eret

from_el2:
  mov x2, #CPTR_EL2_RES1                // no FP/SIMD traps to EL2
  msr cptr_el2, x2
  mov x2, #HCR_EL2_RW
  msr hcr_el2, x2
  mov x2, #CNTHCTL_EL1_COUNTER_ACCESS   // EL1 may read the physical counter and timer
  msr cnthctl_el2, x2
  msr cntvoff_el2, xzr
  mov x2, #SPSR_EL1H_MASKED
  msr spsr_el2, x2
  msr elr_el2, x30
  eret

// Position independent, MMU off, before any set-up: "loaded at X, linked at Y" on the
// board's PL011 (as firmware left it: `enable_uart=1`), from core 0, then halt.
#if defined(BOARD_VIRT)
#define EARLY_UART 0x09000000
#elif defined(BOARD_RASPI4B)
#define EARLY_UART 0xFE201000
#else
#define EARLY_UART 0x3F201000
#endif
wrong_address:
  mrs x3, mpidr_el1
  ldr x4, =ARCH_MPIDR_AFFINITY_MASK
  and x3, x3, x4
  cbnz x3, halt_core
  mov x21, x1
  mov x22, x2
  adr x4, message_loaded
  bl early_puts
  mov x5, x21
  bl early_puthex
  adr x4, message_linked
  bl early_puts
  mov x5, x22
  bl early_puthex
  adr x4, message_end
  bl early_puts
1:
  wfe
  b 1b

early_putc:                             // w6 = byte; uses x7, x8
  ldr x7, =EARLY_UART
2:
  ldr w8, [x7, #0x18]                   // FR: wait while TXFF
  tbnz w8, #5, 2b
  str w6, [x7]
  ret

early_puts:                             // x4 = NUL-terminated string; uses x4, x6-x9
  mov x9, x30
3:
  ldrb w6, [x4], #1
  cbz w6, 4f
  bl early_putc
  b 3b
4:
  ret x9

early_puthex:                           // x5 = value; uses x5, x6-x10
  mov x9, x30
  mov w6, #'0'
  bl early_putc
  mov w6, #'x'
  bl early_putc
  mov x10, #60
5:
  lsr x6, x5, x10
  and x6, x6, #0xf
  cmp x6, #10
  add x8, x6, #'0'
  add x6, x6, #('a' - 10)
  csel x6, x8, x6, lo
  bl early_putc
  subs x10, x10, #4
  b.ge 5b
  ret x9

message_loaded: .asciz "\r\nSwiftKernelMemory: loaded at "
message_linked: .asciz ", linked at "
message_end: .asciz ": the image must be loaded at the address it was linked for (config.txt kernel_address); halted\r\n"
  .balign 4

  // Set by cores waiting in the holding pen; in .data: the boot core's .bss clear may
  // come after their store.
  .section .data
  .balign 64
  .global arch_pen_waiting
arch_pen_waiting: .word 0
  .balign 64

  .section .bss
  .balign 8
  .global arch_boot_el
arch_boot_el: .quad 0
  .global arch_boot_x0
arch_boot_x0: .quad 0

#endif
