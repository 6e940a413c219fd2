// Semihosting: SYS_EXIT with ADP_Stopped_ApplicationExit ends QEMU with a status (once
// every core's stack canary is checked), and SYS_GET_CMDLINE reads
// `-semihosting-config arg=...`. Both only when boot's probe (exception.c) found
// semihosting; otherwise arch_exit powers the machine off.
#if defined(__aarch64__) && !defined(__linux__)

#define SYS_GET_CMDLINE 0x15
#define SYS_EXIT        0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

  .text
  .global arch_exit
  .type arch_exit, %function
arch_exit:                              // x0 = exit code
  bl arch_exit_status                   // smp.c: the stack canaries; 5 if one is overwritten
  ldr x1, =arch_semihosting             // 1 when boot's probe found semihosting
  ldr w1, [x1]
  cmp w1, #1
  b.ne arch_power_off                   // exception.c: PSCI or the PM watchdog
  sub sp, sp, #16
  ldr x1, =ADP_STOPPED_APPLICATION_EXIT
  str x1, [sp]
  str x0, [sp, #8]
  mov x1, sp
  mov w0, #SYS_EXIT
  hlt #0xf000
1:
  wfe                                   // semihosting disabled: nothing else to do
  b 1b

  .global arch_semihosting_cmdline
  .type arch_semihosting_cmdline, %function
arch_semihosting_cmdline:               // x0 = buffer, x1 = capacity; returns 0 on success
  ldr x2, =arch_semihosting
  ldr w2, [x2]
  cmp w2, #1
  b.eq 1f
  mov x0, #-1                           // no semihosting: no command line
  ret
1:
  sub sp, sp, #16
  stp x0, x1, [sp]
  mov x1, sp
  mov w0, #SYS_GET_CMDLINE
  hlt #0xf000
  add sp, sp, #16
  ret

  .global arch_current_el
arch_current_el:
  mrs x0, CurrentEL
  lsr x0, x0, #2
  ret

  .global arch_counter
arch_counter:
  isb
  mrs x0, cntvct_el0
  ret

  .global arch_counter_frequency
arch_counter_frequency:
  mrs x0, cntfrq_el0
  ret

  .global arch_dsb
arch_dsb:
  dsb sy
  ret

#endif
