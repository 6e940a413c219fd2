// Start-up on QEMU virt, core 0 only: down to EL1 if entered at EL2, FP/SIMD on, the
// stack (painted, so the kernel can tell how much it used), .bss zeroed, the device
// tree's address (x0 at entry) kept, then the Swift entry point `main`.
#define SPSR_EL1H_MASKED 0x3c5            // EL1h, D/A/I/F masked
#define HCR_EL2_RW (1 << 31)              // EL1 is AArch64
#define CPACR_EL1_FPEN (3 << 20)          // FP/SIMD at EL1 and EL0 without trapping
#define STACK_PAINT 0x5354414b5354414b    // "KATSKATS"

  .section .text.boot, "ax"
  .global _start
_start:
  mrs x1, mpidr_el1
  and x1, x1, #0xff
  cbnz x1, park                           // other cores (there are none with -smp 1)
  mov x19, x0                             // the device tree, when the loader passes it
  mrs x1, CurrentEL
  cmp x1, #(2 << 2)
  b.ne at_el1
  mov x1, #HCR_EL2_RW
  msr hcr_el2, x1
  mov x1, #SPSR_EL1H_MASKED
  msr spsr_el2, x1
  adr x1, at_el1
  msr elr_el2, x1
  eret
at_el1:
  mov x1, #CPACR_EL1_FPEN
  msr cpacr_el1, x1
  isb
  ldr x1, =__stack_top
  mov sp, x1
  ldr x1, =__stack_bottom
  ldr x2, =STACK_PAINT
  mov x3, sp
1:cmp x1, x3
  b.hs 2f
  str x2, [x1], #8
  b 1b
2:ldr x1, =__bss_start
  ldr x2, =__bss_end
3:cmp x1, x2
  b.hs 4f
  str xzr, [x1], #8
  b 3b
4:ldr x1, =boot_device_tree
  str x19, [x1]
  bl main
  bl kernel_exit                          // main's status (w0)
park:
  wfi
  b park
