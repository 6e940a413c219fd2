// The C allocator entry points of the kernel, all served by KernelHeap's `kernelMemory`.
// Defined only for bare metal; on the host the C library's allocator stays in charge.
#ifndef KERNEL_HEAP_RUNTIME_H
#define KERNEL_HEAP_RUNTIME_H
#endif
