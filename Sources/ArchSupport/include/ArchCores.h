// The cores' constants, shared by the C code, the assembly (boot.S, vectors.S) and
// Swift: only macros here, plain numbers without C suffixes, so that assembly can
// include it.
#ifndef ARCH_CORES_H
#define ARCH_CORES_H

/// Cores with a per-CPU block, an exception stack and a spin-table slot: the boards
/// have four (Cortex-A53 on raspi3b and virt, Cortex-A72 on raspi4b). A core whose
/// MPIDR Aff0 is this or more is never started.
#define ARCH_MAX_CPUS 4

/// Bytes of each core's exception stack (SP_EL1), in .bss (vectors.S).
#define ARCH_EXCEPTION_STACK_BYTES 16384

/// The word at the low end of every kernel stack while it is intact.
#define ARCH_STACK_CANARY 0x57ACC0DE5AFE5EED

/// A core's life, in its block's `state` (changed with atomics only):
/// off → released (the boot core started it) → arriving (it reached Swift and claimed
/// its entry) → online (its "cpu N online" line is out); released → abandoned when it
/// did not arrive in time (it parks if it arrives later). The boot core is online
/// from boot.S on.
#define ARCH_CPU_OFF 0
#define ARCH_CPU_RELEASED 1
#define ARCH_CPU_ARRIVING 2
#define ARCH_CPU_ONLINE 3
#define ARCH_CPU_ABANDONED 4

/// How the other cores are started: PSCI CPU_ON over HVC or SMC (virt, the conduit its
/// device tree's /psci node names), or the spin table at 0xd8 (Raspberry Pi).
#define ARCH_START_PSCI_HVC 1
#define ARCH_START_PSCI_SMC 2
#define ARCH_START_SPIN_TABLE 3

/// The Raspberry Pi spin table (the firmware's armstub8, QEMU's boot stub for a raw
/// image and boot.S's park loop all use it): core n waits for a non-zero entry address
/// in the 64-bit slot at ARCH_SPIN_TABLE_BASE + ARCH_SPIN_TABLE_STRIDE × n, in page 0.
/// Core 0's slot (0xd8) is unused; cores 1-3 wait at 0xe0, 0xe8 and 0xf0 (the
/// `cpu-release-addr` of the Pis' device trees).
#define ARCH_SPIN_TABLE_BASE 0xd8
#define ARCH_SPIN_TABLE_STRIDE 8

/// MPIDR_EL1's Aff0 field: the core's number within its cluster.
#define ARCH_MPIDR_AFF0_MASK 0xff

#endif
