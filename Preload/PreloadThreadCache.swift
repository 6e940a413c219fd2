// The heap's side of the preload library's per-thread cache (Preload/tcache.c): the C
// names it calls to learn an object's size class, to refill a bin and to flush one, the
// sampled allocation it counts itself, and the class table. Nothing here allocates or
// holds state of its own beyond the heap handle.
import KernelHeap
import KernelMemory
import PageFrames

/// The installed heap, kept beside `kernelMemory` so the cache's calls load one word.
nonisolated(unsafe) var threadCacheHeap: Heap? = nil

/// Remembers the heap `kmalloc_setup` installed (called at its end).
func rememberHeapForThreadCache() { threadCacheHeap = kernelMemory.heap }

/// The size class of `pointer` when it starts a live size-class slab object
/// (`Heap.sizeClass(ofObject:)`), else -1; -1 before set-up.
/// - Complexity: O(log ranges), no lock.
@_cdecl("kmalloc_slab_class")
public func kmallocSlabClass(_ pointer: UnsafeMutableRawPointer) -> Int {
  guard let heap = threadCacheHeap else { return -1 }
  return heap.sizeClass(ofObject: pointer)
}

/// Up to `count` objects of size class `sizeClass` from the calling thread's CPU slot,
/// under one lock, into `buffer` (`Heap.takeObjects`).
/// - Returns: how many; 0 before set-up or when none could be had.
/// - Complexity: O(count) under one lock.
@_cdecl("kmalloc_take")
public func kmallocTake(_ sizeClass: Int, _ buffer: UnsafeMutablePointer<UnsafeMutableRawPointer>, _ count: Int) -> Int {
  guard let heap = threadCacheHeap else { return 0 }
  return heap.takeObjects(ofClass: sizeClass, into: buffer, count: count)
}

/// Frees `objects[0 ..< count]` (`Heap.returnObjects`); bad ones are reported as
/// "free: reason address".
/// - Returns: the objects freed.
/// - Complexity: O(count · log ranges), one lock hold per run of one cache.
@_cdecl("kmalloc_return")
public func kmallocReturn(_ objects: UnsafePointer<UnsafeMutableRawPointer>, _ count: Int) -> Int {
  guard let heap = threadCacheHeap else { return 0 }
  return heap.returnObjects(objects, count: count) { error in badInputHandler(error.report("free")) }
}

/// The sampled allocation of `size` bytes (`Heap.allocateFromPool`), or nil.
/// - Complexity: as `GuardedPool.allocate`.
@_cdecl("kmalloc_sample_allocate")
public func kmallocSampleAllocate(_ size: Int) -> UnsafeMutableRawPointer? {
  threadCacheHeap?.allocateFromPool(size)
}

/// The class table for the cache: `classOfGranule[g]` for every granule `g` of a
/// request up to `SlabClass.limit` (`granules` entries), `objectSize[c]` for every class.
/// - Returns: the class count, or 0 before set-up or when the tables do not fit
///   (`granules` or `classes` too small): the cache stays off then.
/// - Complexity: O(granules + classes).
@_cdecl("kmalloc_class_table")
public func kmallocClassTable(
  _ classOfGranule: UnsafeMutablePointer<UInt8>, _ granules: Int, _ objectSize: UnsafeMutablePointer<Int32>, _ classes: Int
) -> Int {
  guard let heap = threadCacheHeap, granules >= SlabClass.limit / 16 + 1, classes >= SlabClass.count
  else { return 0 }
  for granule in 0...(SlabClass.limit / 16) {
    let sizeClass = heap.sizeClass(ofGranule: granule)
    guard sizeClass >= 0 else { return 0 }
    classOfGranule[granule] = UInt8(truncatingIfNeeded: sizeClass)
  }
  for sizeClass in 0..<SlabClass.count { objectSize[sizeClass] = Int32(SlabClass.objectSize(sizeClass)) }
  return SlabClass.count
}

/// Live objects of the size classes (`HeapStatistics.slabObjects`, a walk under every
/// heap lock), for KMALLOC_STATS' exit line; -1 before set-up.
/// - Complexity: O(blocks + caches).
@_cdecl("kmalloc_slab_objects")
public func kmallocSlabObjects() -> Int {
  guard let heap = threadCacheHeap else { return -1 }
  return heap.statistics.slabObjects
}
