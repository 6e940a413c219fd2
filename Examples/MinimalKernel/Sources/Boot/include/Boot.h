// What the example kernel's Swift code needs from its start-up code.
#include <stddef.h>
#include <stdint.h>

/// x0 at entry: the device tree's address when the loader passes one, else 0.
uintptr_t boot_device_tree_address(void);

/// The kernel image: `__kernel_start` and `__end` (page aligned) of the linker script.
uintptr_t boot_kernel_start(void);
uintptr_t boot_kernel_end(void);

/// Bytes of the boot stack used so far (the deepest the stack got).
size_t boot_stack_used(void);

/// Zeroes `count` bytes at `pointer`: the kernel's zero fill for memInit.
void boot_zero(void *pointer, long count);

/// Ends the run with `code` as QEMU's exit status (semihosting).
_Noreturn void kernel_exit(int code);
