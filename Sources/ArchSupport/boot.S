// Start-up: park secondary cores, drop to EL1, enable FP/SIMD, install the exception
// vectors and stacks, zero .bss, turn on the MMU (identity map), probe for semihosting,
// then call the Swift entry point `main`.
#if defined(__aarch64__) && !defined(__linux__)

#define SCR_EL3_NS      (1 << 0)
#define SCR_EL3_RW      (1 << 10)
#define HCR_EL2_RW      (1 << 31)
#define SPSR_EL1H_MASKED 0x3c5          // EL1h, D/A/I/F masked
#define CPACR_FPEN_ALL  (3 << 20)
#define CPTR_EL2_RES1   0x33ff
#define SCTLR_EL1_RES1  0x30d00800      // MMU, caches and alignment checks off

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
  mrs x1, mpidr_el1
  and x1, x1, #0xff
  cbz x1, primary
park:
  wfi                                   // sleeps under QEMU too (wfe only yields there)
  b park

primary:
  mrs x19, CurrentEL
  lsr x19, x19, #2                      // x19 = entry exception level
  ldr x2, =SCTLR_EL1_RES1
  msr sctlr_el1, x2
  cmp x19, #3
  b.eq from_el3
  cmp x19, #2
  b.eq from_el2
  b at_el1

from_el3:
  msr cptr_el3, xzr                     // no FP/SIMD traps to EL3
  mov x2, #(SCR_EL3_NS | SCR_EL3_RW)
  msr scr_el3, x2
  mov x2, #HCR_EL2_RW                   // EL1 is AArch64
  msr hcr_el2, x2
  mov x2, #SPSR_EL1H_MASKED
  msr spsr_el3, x2
  adr x2, at_el1
  msr elr_el3, x2
  eret

from_el2:
  mov x2, #CPTR_EL2_RES1                // no FP/SIMD traps to EL2
  msr cptr_el2, x2
  mov x2, #HCR_EL2_RW
  msr hcr_el2, x2
  mov x2, #3                            // EL1 may read the physical counter and timer
  msr cnthctl_el2, x2
  msr cntvoff_el2, xzr
  mov x2, #SPSR_EL1H_MASKED
  msr spsr_el2, x2
  adr x2, at_el1
  msr elr_el2, x2
  eret

at_el1:
  mov x2, #CPACR_FPEN_ALL
  msr cpacr_el1, x2
  // Exception vectors first: from here on any fault is reported (vectors.S).
  ldr x2, =arch_exception_vectors
  msr vbar_el1, x2
  isb
  // SP_EL1 is the exception stack; the kernel runs on SP_EL0 with the boot stack.
  ldr x2, =arch_exception_stack_top
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

  bl arch_mmu_enable
  bl arch_probe_semihosting             // may trap once, into our own vectors
  mov x0, #0
  mov x1, #0
  bl main
  bl arch_exit                          // main's return value is the exit status
3:
  b 3b

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
  and x3, x3, #0xff
  cbnz x3, park
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

  .section .bss
  .balign 8
  .global arch_boot_el
arch_boot_el: .quad 0
  .global arch_boot_x0
arch_boot_x0: .quad 0

#endif
