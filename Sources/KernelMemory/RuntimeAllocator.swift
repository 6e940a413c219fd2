// The kernel heap behind the C allocation symbols that Embedded Swift's runtime (and any
// C code) link against: posix_memalign and free first, plus malloc, calloc, realloc and
// aligned_alloc. KernelHeapRuntime/runtime.c defines those names and forwards here (Swift
// may not define `malloc`/`free` itself). Host builds keep the C library's allocator,
// hence the condition. Before memInit each of them reports "memory not set up".
import KernelHeap
import PageFrames

#if hasFeature(Embedded)

private let errnoENOMEM: Int32 = 12
private let errnoEINVAL: Int32 = 22

/// posix_memalign: 0 and `*result` set, EINVAL for an alignment that is not a power of
/// two of at least 8, ENOMEM when there is no memory, memory is not set up, or the
/// alignment is above the 4096 the heap provides (`*result` untouched then).
/// - Complexity: O(1), as `Heap.allocate(_:alignment:)`.
@_cdecl("kheap_posix_memalign")
public func runtimePosixMemalign(
  _ result: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int
) -> Int32 {
  guard alignment >= 8, alignment & (alignment - 1) == 0 else { return errnoEINVAL }
  guard let pointer = kernelMemory.allocate(size, alignment: alignment, function: "posix_memalign") else { return errnoENOMEM }
  result.pointee = pointer
  return 0
}

/// aligned_alloc: nil for a bad alignment or no memory.
/// - Complexity: O(1).
@_cdecl("kheap_aligned_alloc")
public func runtimeAlignedAlloc(_ alignment: Int, _ size: Int) -> UnsafeMutableRawPointer? {
  guard alignment > 0, alignment & (alignment - 1) == 0 else { return nil }
  return kernelMemory.allocate(size, alignment: alignment, function: "aligned_alloc")
}

/// malloc: 16-byte aligned; nil when there is no memory.
/// - Complexity: O(1).
@_cdecl("kheap_malloc")
public func runtimeMalloc(_ size: Int) -> UnsafeMutableRawPointer? {
  kernelMemory.allocate(size, function: "malloc")
}

/// calloc: zeroed; nil when `count * size` overflows or memory is short.
/// - Complexity: O(1) plus zeroing the block.
@_cdecl("kheap_calloc")
public func runtimeCalloc(_ count: Int, _ size: Int) -> UnsafeMutableRawPointer? {
  kernelMemory.allocateZeroed(count: count, size: size, function: "calloc")
}

/// realloc: as `Heap.reallocate`; a bad pointer is reported as "realloc: reason address".
/// - Complexity: O(1) in place, O(size) when it moves.
@_cdecl("kheap_realloc")
public func runtimeRealloc(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
  kernelMemory.reallocate(pointer, to: size, function: "realloc")
}

/// free: nil does nothing; a bad pointer is reported as "free: reason address".
/// - Complexity: O(1).
@_cdecl("kheap_free")
public func runtimeFree(_ pointer: UnsafeMutableRawPointer?) {
  kernelMemory.free(pointer, caller: .free)
}

#endif
