// The cores' constants, shared by the C code, the assembly (boot.S, vectors.S) and
// Swift: only macros here, plain numbers without C suffixes, so that assembly can
// include it.
#ifndef ARCH_CORES_H
#define ARCH_CORES_H

/// Cores with a per-CPU block (64 bytes each, in .bss): the most the kernel runs, the
/// boot core included. The Pis have four; QEMU's virt up to 512 (the cores past this
/// are named in one line and stay off). At most 64: the boot core tracks the cores it
/// started in one 64-bit mask.
#define ARCH_MAX_CPUS 64

/// Bytes of each core's exception stack (SP_EL1): the boot core's in .bss (vectors.S),
/// a started core's from the page frames (Arch/SecondaryCores.swift).
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

/// How the other cores are started: PSCI CPU_ON over HVC or SMC (the conduit the device
/// tree's /psci node names), a spin table (the cpu node's cpu-release-addr; the Pis'
/// table at 0xd8 without a tree), or the kernel's holding pen (virt: cores a machine
/// without firmware started at the kernel's entry wait there for their MPIDR).
#define ARCH_START_PSCI_HVC 1
#define ARCH_START_PSCI_SMC 2
#define ARCH_START_SPIN_TABLE 3
#define ARCH_START_HOLDING_PEN 4
/// RISC-V: the SBI's Hart State Management extension, hart_start (target: the hart id).
#define ARCH_START_SBI_HSM 5

/// The Raspberry Pi spin table (the firmware's armstub8, QEMU's boot stub for a raw
/// image and boot.S's park loop all use it): core n waits for a non-zero entry address
/// in the 64-bit slot at ARCH_SPIN_TABLE_BASE + ARCH_SPIN_TABLE_STRIDE × n, in page 0.
/// Core 0's slot (0xd8) is unused; cores 1-3 wait at 0xe0, 0xe8 and 0xf0 (the
/// `cpu-release-addr` of the Pis' device trees). Cores with MPIDR affinity 0 ..<
/// ARCH_SPIN_TABLE_CORES have a slot.
#define ARCH_SPIN_TABLE_BASE 0xd8
#define ARCH_SPIN_TABLE_STRIDE 8
#define ARCH_SPIN_TABLE_CORES 4

/// MPIDR_EL1's affinity fields, Aff0-Aff2 (bits 0-23) and Aff3 (bits 32-39): what tells
/// the cores apart (a device tree's cpu `reg`). The boot core is the one whose affinity
/// is 0.
#define ARCH_MPIDR_AFFINITY_MASK 0xff00ffffff

#endif
