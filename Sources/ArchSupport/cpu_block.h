// Offsets into `struct arch_cpu` (ArchSupport.h) for the assembly; smp.c checks each
// against the C layout at compile time.
#ifndef ARCH_CPU_BLOCK_H
#define ARCH_CPU_BLOCK_H

#define CPU_BLOCK_SHIFT 6                  // 64-byte blocks: one cache line per core
#define CPU_BLOCK_BYTES (1 << CPU_BLOCK_SHIFT)
#define CPU_BLOCK_CPU 0
#define CPU_BLOCK_STACK_BOTTOM 8
#define CPU_BLOCK_STACK_TOP 16
#define CPU_BLOCK_EXCEPTION_STACK_TOP 24
#define CPU_BLOCK_STATE 40
#define CPU_BLOCK_ENTRY_EL 44
#define CPU_BLOCK_MIDR 48
#define CPU_BLOCK_MPIDR 56

#endif
