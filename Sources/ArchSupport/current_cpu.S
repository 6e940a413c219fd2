// ks_current_cpu (declared by KernelSyncAtomics.h): the calling core's number, the
// first word of its per-CPU block, which TPIDR_EL1 points to from boot.S on (the boot
// core before any C or Swift code, a started core before it calls any). The portable
// allocators call it on every kmalloc and kfree: two instructions and a return.
#if defined(__aarch64__) && !defined(__linux__)

  .text
  .global ks_current_cpu
  .type ks_current_cpu, %function
ks_current_cpu:
  mrs x0, tpidr_el1
  ldr w0, [x0]
  ret
  .size ks_current_cpu, . - ks_current_cpu

#endif
