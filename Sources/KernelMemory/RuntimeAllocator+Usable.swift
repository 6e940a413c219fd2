// malloc_usable_size for the C shims (the kernel's and the host's malloc preload
// library, Preload/shim.c), beside the other kheap_* names of RuntimeAllocator.swift.
import KernelHeap
import PageFrames

import PageFrames

#if hasFeature(Embedded)

/// malloc_usable_size: the usable bytes of a live allocation (`Heap.usableSize`); 0 for
/// nil, before memory is set up, or for a bad pointer (reported as
/// "malloc_usable_size: reason address").
/// - Complexity: O(1).
@_cdecl("kheap_usable_size")
public func runtimeUsableSize(_ pointer: UnsafeMutableRawPointer?) -> Int {
  guard let pointer, let heap = kernelMemory.heap else { return 0 }
  do {
    return try heap.usableSize(pointer)
  } catch {
    badInputHandler(error.report("malloc_usable_size"))
    return 0
  }
}

#endif
