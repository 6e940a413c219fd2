// The C helpers PreloadSetup.swift calls (defined in Preload/shim.c), and the Swift
// functions shim.c calls (defined in PreloadSetup.swift and KernelHeap).
#ifndef KMALLOC_PRELOAD_H
#define KMALLOC_PRELOAD_H

#include <stdbool.h>
#include <stdint.h>

/// memset(pointer, 0, count): the page allocator's and the heap's ZeroFill.
void kmalloc_zero_fill(void *_Nullable pointer, long count);

/// Writes "function: reason 0x<address>" and a newline to stderr with write(2), and
/// notes that a call was refused (so the shim does not retry it with more memory).
void kmalloc_report(const uint8_t *_Nonnull function, long functionLength,
                    const uint8_t *_Nonnull reason, long reasonLength, uintptr_t address);

// The sampling detector's hooks (GuardedPoolHooks), passed to GuardedPool by
// PreloadSetup.swift's kmalloc_pool_setup; `context` is unused (nil).

/// mprotect of one pool page: read-write when `accessible`, else PROT_NONE.
bool kmalloc_pool_protect(void *_Nullable context, uintptr_t page, bool accessible);

/// The stack of the C call in progress (a free or realloc of a pool object), which the
/// shim captured before calling the heap: glibc's backtrace cannot walk through the
/// Swift frames between here and there (they have no unwind tables). 0 frames for any
/// other call; allocation stacks are recorded after the allocation returns
/// (kmalloc_pool_note_allocation).
long kmalloc_pool_capture(void *_Nullable context, uintptr_t *_Nonnull buffer, long capacity);

/// Report text to stderr, a line at a time; after each "backtrace:" line, one line per
/// address, symbolized by backtrace_symbols_fd.
void kmalloc_pool_write(void *_Nullable context, const uint8_t *_Nonnull bytes, long count);

/// After a report: the stack of the faulting access (when a fault was reported), then
/// abort().
void kmalloc_pool_fatal(void *_Nullable context);

#endif
