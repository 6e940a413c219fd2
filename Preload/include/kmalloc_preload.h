// The C helpers PreloadSetup.swift calls (defined in Preload/shim.c), and the Swift
// functions shim.c calls (defined in PreloadSetup.swift and KernelHeap).
#ifndef KMALLOC_PRELOAD_H
#define KMALLOC_PRELOAD_H

#include <stdint.h>

/// memset(pointer, 0, count): the page allocator's and the heap's ZeroFill.
void kmalloc_zero_fill(void *_Nullable pointer, long count);

/// Writes "function: reason 0x<address>" and a newline to stderr with write(2), and
/// notes that a call was refused (so the shim does not retry it with more memory).
void kmalloc_report(const uint8_t *_Nonnull function, long functionLength,
                    const uint8_t *_Nonnull reason, long reasonLength, uintptr_t address);

#endif
