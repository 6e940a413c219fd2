// ArchSupport: the C and assembly half of the Arch layer (AArch64, bare metal).
// On the host every definition compiles away; only the Swift Arch module uses these.
#ifndef ARCH_SUPPORT_H
#define ARCH_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__aarch64__) && !defined(__linux__) && !defined(__APPLE__)
#define ARCH_BARE_METAL 1
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
/// boot's probe found no semihosting. Never returns.
void arch_exit(int code) __attribute__((noreturn));

/// Fills `buffer` (at most `capacity` bytes) with the semihosting command line
/// (`-semihosting-config arg=...`). Returns 0 on success.
long arch_semihosting_cmdline(char *buffer, size_t capacity);

/// Whether boot's probe found semihosting (QEMU's -semihosting-config enable=on).
int arch_semihosting_available(void);

/// Powers the machine off without semihosting: PSCI SYSTEM_OFF on virt, the PM
/// watchdog's halt on the Pis (exception.c). Never returns.
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

/// Builds the identity map and turns on the MMU and caches. Called once by boot.S.
void arch_mmu_enable(void);

/// Writes a character to the UART, `\n` as CR LF (libc.c). Embedded Swift's print() uses it.
int putchar(int c);

/// Output capture for debugger commands: on, putchar appends to a NUL-terminated
/// buffer of 16 KiB (cleared when capture starts) instead of the UART; the buffer's
/// address is `arch_debug_buffer()`.
void arch_debug_capture(int on);
const char *arch_debug_buffer(void);

/// Writes one byte to the board's PL011 UART (Swift, Arch/Uart.swift).
void arch_uart_putc(uint8_t byte);

/// Current exception level (1 after boot).
uint64_t arch_current_el(void);

/// Virtual counter and its frequency, for coarse timing.
uint64_t arch_counter(void);
uint64_t arch_counter_frequency(void);

/// Reads an MMIO register with a single 32-bit load that the compiler may not elide.
static inline uint32_t arch_mmio_read32(uintptr_t address) {
  return *(volatile uint32_t *)address;
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

#ifdef __cplusplus
}
#endif

#endif
