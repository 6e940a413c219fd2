// ArchSupport: the C and assembly half of the Arch layer, bare metal only: one folder
// per architecture (aarch64/, riscv64/) behind the same functions, and the parts they
// share (libc.c, cores.c, report.c, symbols.c). On the host every definition compiles
// away; only the Swift Arch module uses these.
#ifndef ARCH_SUPPORT_H
#define ARCH_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ArchCores.h"

#if defined(__aarch64__) && !defined(__linux__) && !defined(__APPLE__)
#define ARCH_BARE_METAL 1
#define ARCH_AARCH64 1
/// Where a frame's record [caller's frame pointer, return address] lies from its frame
/// pointer: at x29.
#define ARCH_FRAME_RECORD_OFFSET 0
#elif defined(__riscv) && __riscv_xlen == 64 && !defined(__linux__)
#define ARCH_BARE_METAL 1
#define ARCH_RISCV64 1
/// RISC-V: below s0/fp, [fp - 16] the caller's fp and [fp - 8] the return address.
#define ARCH_FRAME_RECORD_OFFSET (-16)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/// Zeroes `size` bytes at `ptr` with 16-byte stores (and `dc zva` for whole blocks).
/// Any alignment, any size. Assembly: bzero.S.
void bzero(void *ptr, size_t size);

/// The byte-at-a-time reference zero fill (one volatile byte store per byte), for
/// comparing bzero against in tests and the guest benchmark. libc.c.
void arch_zero_bytes(void *ptr, size_t size);

/// Ends the QEMU process with `code` as its exit status (semihosting SYS_EXIT,
/// ADP_Stopped_ApplicationExit), or powers off (`arch_power_off`, status lost) when
/// boot's probe found no semihosting. First every started core's stack canary is
/// checked: an overwritten one is reported and turns status 0 into
/// ARCH_EXIT_STACK_SMASHED (`arch_exit_status`). Never returns.
void arch_exit(int code) __attribute__((noreturn));

/// Fills `buffer` (at most `capacity` bytes) with the semihosting command line
/// (`-semihosting-config arg=...`). Returns 0 on success.
long arch_semihosting_cmdline(char *buffer, size_t capacity);

/// Whether boot's probe found semihosting (QEMU's -semihosting-config enable=on).
int arch_semihosting_available(void);

/// Powers the machine off without semihosting: PSCI SYSTEM_OFF over the conduit the
/// device tree named (arch_set_psci_conduit) on virt, the PM watchdog's halt on the
/// Pis (exception.c). Without a way (virt without /psci), or when the call returns, it
/// prints "power-off: ... halted" and sleeps (wfi) for good. Never returns.
void arch_power_off(void) __attribute__((noreturn));

/// The decoded names of an exception kind (vectors.S's 0...15) and of an ESR value's
/// exception class, as printed in reports.
const char *arch_exception_kind(uint64_t kind);
const char *arch_exception_class(uint64_t esr);

/// Deliberate faults for the test kernel: a load from an unmapped address, an undefined
/// instruction, a `brk`. Each is reported by the exception vectors.
void arch_fault_data_abort(void);
void arch_fault_undefined(void);
void arch_fault_brk(void);

/// For the test kernel: overwrites core `cpu`'s stack canary, as a stack overflow would
/// (nothing for a core never started). smp.c.
/// Deliberate faults for the kernel map's checks: recursion until the stack at
/// `stack_top` (0: the current one) reaches its guard page; a store to `address`; a
/// `ret` written at `address` and called.
void arch_fault_stack_overflow(uintptr_t stack_top);
void arch_fault_write(uintptr_t address);

/// Writes up to `capacity` return addresses of the calling stack into `out`, innermost
/// first, following the frame records within this core's stack; returns how many.
long arch_capture_stack(uint64_t *_Nonnull out, long capacity);

/// Reads a byte at `address` (a deliberate fault when it is not mapped readable).
uint8_t arch_fault_read(uintptr_t address);
void arch_fault_execute(uintptr_t address);
void arch_fault_stack_canary(unsigned long cpu);

/// Exception level the boot code was entered at (1, 2 or 3), and the value of x0 at entry.
extern uint64_t arch_boot_el;
extern uint64_t arch_boot_x0;

/// Linker-script symbols, as addresses: the kernel image is [kernel_start, kernel_end),
/// kernel_end being `__end` (page aligned); .bss and the boot stack lie inside it.
uintptr_t arch_kernel_start(void);
uintptr_t arch_kernel_end(void);
uintptr_t arch_bss_start(void);
uintptr_t arch_bss_end(void);
uintptr_t arch_stack_bottom(void);
uintptr_t arch_stack_top(void);
/// The page-aligned section bounds the kernel map protects: text [kernel_start,
/// text_end) read-execute, rodata [text_end, rodata_end) read-only, data and .bss
/// [rodata_end, stack_guard) read-write; the boot stack's guard page [stack_guard,
/// stack_bottom) stays unmapped.
uintptr_t arch_text_end(void);
uintptr_t arch_rodata_end(void);
uintptr_t arch_stack_guard(void);

/// The barriers and TLB invalidations of VirtualMemory's TranslationMaintenance
/// (translation.c): DMB ISHST; DSB ISH + ISB; DSB ISHST; TLBI VAE1IS; TLBI VMALLE1IS;
/// DSB ISH + ISB.
void arch_vm_order_table_writes(void);
void arch_vm_publish(void);
void arch_vm_before_invalidation(void);
void arch_vm_invalidate_page(uintptr_t address);
void arch_vm_invalidate_all(void);
void arch_vm_complete_invalidation(void);
/// Switches this core to the kernel map at `root` (48-bit VAs, MAIR attr1 nGnRE) and
/// records it for cores started later. Both maps must translate the running code and
/// stack identically.
void arch_mmu_switch(uintptr_t root);

/// Builds the identity map and turns on the MMU and caches. Called once by boot.S.
void arch_mmu_enable(void);

/// Turns on the MMU and caches of a secondary core with the boot core's translation
/// tables, MAIR, TCR and SCTLR bits (arch_mmu_enable must have run). Uses no stack.
/// Called by boot.S's secondary entry.
void arch_mmu_enable_secondary(void);

/// Writes a character to the UART, `\n` as CR LF (libc.c). Embedded Swift's print() uses it.
int putchar(int c);

/// Output capture for debugger commands: on, putchar appends to a NUL-terminated
/// buffer of 16 KiB (cleared when capture starts) instead of the UART; the buffer's
/// address is `arch_debug_buffer()`.
void arch_debug_capture(int on);
const char *arch_debug_buffer(void);

/// Writes one byte to the board's PL011 UART (Swift, Arch/Uart.swift).
void arch_uart_putc(uint8_t byte);

/// RISC-V: whether the SBI firmware offers Hart State Management (hart_start), and the
/// time counter's frequency (the device tree's timebase-frequency; 10 MHz until set).
int arch_sbi_has_hsm(void);
extern uint64_t arch_timebase_frequency;

/// Current exception level (1 after boot; RISC-V: 1, S-mode).
uint64_t arch_current_el(void);

/// Virtual counter and its frequency, for coarse timing.
uint64_t arch_counter(void);
uint64_t arch_counter_frequency(void);

/// Reads an MMIO register with a single 32-bit load that the compiler may not elide.
static inline uint32_t arch_mmio_read32(uintptr_t address) {
  return *(volatile uint32_t *)address;
}

/// Reads / writes a byte-wide MMIO register (the NS16550's) with one access.
static inline uint8_t arch_mmio_read8(uintptr_t address) {
  return *(volatile uint8_t *)address;
}
static inline void arch_mmio_write8(uintptr_t address, uint8_t value) {
  *(volatile uint8_t *)address = value;
}

/// Writes an MMIO register with a single 32-bit store that the compiler may not elide.
static inline void arch_mmio_write32(uintptr_t address, uint32_t value) {
  *(volatile uint32_t *)address = value;
}

/// Cleans (writes back) / invalidates the data cache lines covering [ptr, ptr + size)
/// to the point of coherency, then `dsb sy`: for buffers another bus master reads or
/// writes (the VideoCore's mailbox messages). exception.c.
void arch_cache_clean(const volatile void *ptr, size_t size);
void arch_cache_invalidate(const volatile void *ptr, size_t size);

/// Full-system data memory barrier, for ordering MMIO against memory (mailbox buffers).
void arch_dsb(void);

/// Cleans and invalidates the data cache lines covering [ptr, ptr + size) to the point
/// of coherency, then `dsb sy`: for memory another core will read or write with its
/// MMU (and so its caches) still off. exception.c.
void arch_cache_clean_invalidate(const volatile void *ptr, size_t size);

// MARK: Cores (smp.c, boot.S)

/// What a secondary core runs once online, given its number; it parks when this returns.
typedef void (*arch_cpu_entry)(long cpu);

/// The per-CPU block TPIDR_EL1 points to, one cache line per core. `cpu` must stay the
/// first field: ks_current_cpu reads it with one load. boot.S reads the stack fields
/// by offset (cpu_block.h, checked against this layout in smp.c).
struct arch_cpu {
  uint64_t cpu;                  ///< logical number 0 ..< ARCH_MAX_CPUS (0: the boot core)
  uint64_t stack_bottom;         ///< kernel stack [stack_bottom, stack_top); canary at bottom
  uint64_t stack_top;
  uint64_t exception_stack_top;  ///< SP_EL1
  arch_cpu_entry entry;          ///< run once online; NULL: park at once
  uint32_t state;                ///< ARCH_CPU_OFF ... ARCH_CPU_ABANDONED
  uint32_t entry_el;             ///< the exception level the core entered the kernel at
  uint64_t midr;                 ///< MIDR_EL1 (implementer, part number)
  uint64_t mpidr;                ///< MPIDR_EL1's affinity (ARCH_MPIDR_AFFINITY_MASK): which core
};

// `unsigned ks_current_cpu(void)`, the calling core's number (the first word of the
// per-CPU block at TPIDR_EL1), is an inline function of KernelSyncAtomics.h for the
// portable code; Swift reads it as KernelSync's `CPU.current`. Keep `cpu` first.

/// The per-CPU block of logical core `cpu`, or NULL when `cpu >= ARCH_MAX_CPUS`.
struct arch_cpu *arch_cpu_block(unsigned long cpu);

/// Block `cpu`'s state, loaded with acquire ordering (ARCH_CPU_OFF for no such core).
uint32_t arch_cpu_state(unsigned long cpu);

/// Moves core `cpu` from state `from` to `to` if it is in `from` (compare-and-swap,
/// acquire and release); whether it did.
int arch_cpu_transition(unsigned long cpu, uint32_t from, uint32_t to);

/// Readies block `cpu` (1 ..< ARCH_MAX_CPUS) for the core with MPIDR affinity `mpidr`:
/// the kernel stack [stack, stack + bytes) with the canary at its low end, the exception
/// stack [exception_stack, exception_stack + exception_bytes), `entry`, state released;
/// then cleans and invalidates the block and the stack to the point of coherency (the
/// core reads them with its MMU off, and finds its block by its MPIDR). Returns 0, or
/// -1 for a bad number, stack, or an MPIDR another block (or the boot core) has.
int arch_cpu_prepare(unsigned long cpu, uint64_t mpidr, uintptr_t stack, size_t bytes, uintptr_t exception_stack,
                     size_t exception_bytes, arch_cpu_entry entry);

/// Starts the core of block `cpu` (prepared) at `arch_secondary_entry` with `method`
/// (ARCH_START_...): PSCI CPU_ON (target: the block's MPIDR) returns PSCI's status (0
/// on success; -2 invalid parameters, -4 already on, ...); the spin table writes the
/// entry to `release_address` (8-byte aligned), cleans it to memory and sends an event,
/// and returns 0; the holding pen sends an event (the core finds its released block)
/// and returns 0. -2 for a bad number, method or release address.
long arch_cpu_start(unsigned long cpu, int method, uint64_t release_address);

/// Whether any core entered the kernel at its entry besides the boot core and waits in
/// boot.S's holding pen (virt; a machine without firmware starts every core there).
/// Cores set the flag with their MMU off; this invalidates it first.
int arch_cores_waiting_at_entry(void);

/// A PSCI call (SMCCC: function id in x0, arguments in x1-x3) over `method`
/// (ARCH_START_PSCI_HVC or _SMC); PSCI's status. smp.c.
long arch_psci_call(uint64_t function, uint64_t a1, uint64_t a2, uint64_t a3, int method);

/// The conduit arch_set_psci_conduit recorded (0: none).
extern int arch_psci_conduit;

/// Records the PSCI conduit the device tree names (ARCH_START_PSCI_HVC or _SMC; 0:
/// none), for arch_power_off and arch_cpu_park.
void arch_set_psci_conduit(int method);

/// Where a started core begins (boot.S): at any of EL3, EL2 or EL1, MMU off.
void arch_secondary_entry(void);

/// Parks the calling secondary core for good: PSCI CPU_OFF when the cores were started
/// with PSCI, else (or if CPU_OFF returns) a `wfi` loop. boot.S calls it when a
/// secondary's entry returns.
void arch_cpu_park(void) __attribute__((noreturn));

/// Checks every started core's stack canary; prints one line for each overwritten one
/// ("<where>: stack canary of cpu N overwritten 0x<address of the canary>") the first
/// time it is found. Returns how many are overwritten.
unsigned arch_check_stack_canaries(const char *where);

/// The exit status of a run that would have ended with 0 but left a stack canary
/// overwritten.
#define ARCH_EXIT_STACK_SMASHED 5

/// The status arch_exit ends with for `code`: `code`, or ARCH_EXIT_STACK_SMASHED when it
/// is 0 and a stack canary is overwritten (reported as for arch_check_stack_canaries).
int arch_exit_status(int code);

/// What the firmware says of core `cpu`'s state, for the report of a core that did not
/// come online (RISC-V: SBI HSM hart_get_status, "start pending" ...); "" when it is
/// not asked (AArch64).
const char *_Nonnull arch_cpu_firmware_state(unsigned long cpu);

/// A hint inside a spin-wait loop (`yield`).
void arch_cpu_relax(void);

/// 16 bytes of zeroed, 8-aligned static storage for the console lock's words
/// (KernelSync's TicketLockWords; Arch/ConsoleLock.swift).
void *arch_console_lock_storage(void);

#ifdef __cplusplus
}
#endif

#endif
