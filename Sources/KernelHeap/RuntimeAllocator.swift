// The kernel heap behind the C allocation symbols that Embedded Swift's runtime (and any
// C code) link against: posix_memalign and free first, plus malloc, calloc, realloc and
// aligned_alloc. KernelHeapRuntime/runtime.c defines those names and forwards here (Swift
// may not define `malloc`/`free` itself). Host builds keep the C library's allocator,
// hence the condition.
#if hasFeature(Embedded)
import PageFrames

private let errnoENOMEM: Int32 = 12
private let errnoEINVAL: Int32 = 22

@_cdecl("kheap_posix_memalign")
public func runtimePosixMemalign(
  _ result: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int
) -> Int32 {
  guard alignment >= 8, alignment & (alignment - 1) == 0 else { return errnoEINVAL }
  guard let heap = kernelHeap, let pointer = heap.allocate(size, alignment: alignment) else { return errnoENOMEM }
  result.pointee = pointer
  return 0
}

@_cdecl("kheap_aligned_alloc")
public func runtimeAlignedAlloc(_ alignment: Int, _ size: Int) -> UnsafeMutableRawPointer? {
  kernelHeap?.allocate(size, alignment: alignment)
}

@_cdecl("kheap_malloc")
public func runtimeMalloc(_ size: Int) -> UnsafeMutableRawPointer? {
  kernelHeap?.allocate(size)
}

@_cdecl("kheap_calloc")
public func runtimeCalloc(_ count: Int, _ size: Int) -> UnsafeMutableRawPointer? {
  kernelHeap?.allocateZeroed(count: count, size: size)
}

@_cdecl("kheap_realloc")
public func runtimeRealloc(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
  guard let heap = kernelHeap else { return nil }
  do {
    return try heap.reallocate(pointer, to: size)
  } catch {
    badInputHandler(BadInputReport(function: "kheap_realloc", reason: error.reason.text, address: error.address))
    return nil
  }
}

@_cdecl("kheap_free")
public func runtimeFree(_ pointer: UnsafeMutableRawPointer?) {
  guard let heap = kernelHeap else { return }
  do {
    try heap.deallocate(pointer)
  } catch {
    badInputHandler(BadInputReport(function: "free", reason: error.reason.text, address: error.address))
  }
}

#endif
