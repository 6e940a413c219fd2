// The linker script's symbols reach Swift through these accessors only.
#include "ArchSupport.h"

#ifdef ARCH_BARE_METAL

extern char __kernel_start[], __end[], __bss_start[], __bss_end[], __stack_bottom[], __stack_top[];
extern char __text_end[], __rodata_end[], __stack_guard[];

uintptr_t arch_kernel_start(void) { return (uintptr_t)__kernel_start; }
uintptr_t arch_kernel_end(void) { return (uintptr_t)__end; }
uintptr_t arch_bss_start(void) { return (uintptr_t)__bss_start; }
uintptr_t arch_bss_end(void) { return (uintptr_t)__bss_end; }
uintptr_t arch_stack_bottom(void) { return (uintptr_t)__stack_bottom; }
uintptr_t arch_stack_top(void) { return (uintptr_t)__stack_top; }
uintptr_t arch_text_end(void) { return (uintptr_t)__text_end; }
uintptr_t arch_rodata_end(void) { return (uintptr_t)__rodata_end; }
uintptr_t arch_stack_guard(void) { return (uintptr_t)__stack_guard; }

#endif
