// posix_memalign, free, malloc, calloc, realloc and aligned_alloc for the kernel,
// forwarding to the Swift heap (KernelHeap/RuntimeAllocator.swift).
#include "KernelHeapRuntime.h"

#if !defined(__linux__) && !defined(__APPLE__) && !defined(_WIN32)  // bare metal (no operating system) only
#include <stddef.h>

int kheap_posix_memalign(void **result, size_t alignment, size_t size);
void *kheap_aligned_alloc(size_t alignment, size_t size);
void *kheap_malloc(size_t size);
void *kheap_calloc(size_t count, size_t size);
void *kheap_realloc(void *pointer, size_t size);
void kheap_free(void *pointer);

int posix_memalign(void **result, size_t alignment, size_t size) {
  return kheap_posix_memalign(result, alignment, size);
}
void *aligned_alloc(size_t alignment, size_t size) { return kheap_aligned_alloc(alignment, size); }
void *malloc(size_t size) { return kheap_malloc(size); }
void *calloc(size_t count, size_t size) { return kheap_calloc(count, size); }
void *realloc(void *pointer, size_t size) { return kheap_realloc(pointer, size); }
void free(void *pointer) { kheap_free(pointer); }
#endif
