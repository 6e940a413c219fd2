import KernelHeap
import PageFrames
import VirtualMemory

/// The kernel's one memory object: the single point every entry point below (and the C
/// allocator names of the runtime) goes through. `memInit` sets it once, at boot, before
/// any other core runs; it is never replaced after that (`installKernelMemory`). Until
/// then every entry point reports "memory not set up".
///
/// Set it through `memInit` or `installKernelMemory` only (host tests put an empty object
/// back between runs). It is a plain `var` because Swift 6.3 crashes compiling a
/// cross-module read of a noncopyable global declared `private(set)`.
nonisolated(unsafe) public var kernelMemory = KernelMemory()

/// Installs `memory` as the kernel's memory object. Done once: later calls change
/// nothing and return false.
/// - Precondition: no other CPU runs yet (boot, before the secondaries start).
/// - Complexity: O(1).
@discardableResult
public func installKernelMemory(_ memory: consuming KernelMemory) -> Bool {
  guard !kernelMemory.isReady else { return false }
  kernelMemory = memory
  return true
}



/// Allocates `size` bytes, 16-byte aligned; above `Heap.largeRequestThreshold` a page
/// run of its own. `kmalloc(0)` returns a unique minimum block (16 usable bytes). nil
/// when out of memory or for a size that cannot be had: negative, or more than RAM
/// (`Int.max` included). Never traps, at any size.
/// - Complexity: O(1); a large request costs a page-run allocation.
public func kmalloc(_ size: Int) -> UnsafeMutableRawPointer? {
  kernelMemory.allocate(size, function: "kmalloc")
}

/// Frees a kmalloc'd pointer. `kfree(nil)` does nothing. A bad pointer is reported to
/// `badInputHandler` as "kfree: reason address" and changes nothing.
/// - Complexity: O(log ranges): one page-entry lookup decides the owner (O(1) with one
///   RAM range).
public func kfree(_ pointer: UnsafeMutableRawPointer?) {
  kernelMemory.free(pointer, caller: .kfree)
}

/// `size` bytes at a multiple of `alignment` (a power of two up to 4096), or nil.
/// - Complexity: O(1).
public func kmallocAligned(_ size: Int, _ alignment: Int) -> UnsafeMutableRawPointer? {
  kernelMemory.allocate(size, alignment: alignment, function: "kmallocAligned")
}

/// `count * size` zeroed bytes; nil on overflow or no memory.
/// - Complexity: O(1) plus zeroing.
public func kcalloc(_ count: Int, _ size: Int) -> UnsafeMutableRawPointer? {
  kernelMemory.allocateZeroed(count: count, size: size, function: "kcalloc")
}

/// Resizes, in place when possible. nil pointer: kmalloc. Size 0: frees, returns nil.
/// A bad pointer is reported as "krealloc: reason address" and nil is returned.
/// - Complexity: O(log ranges) in place, O(size) when moved.
public func krealloc(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
  kernelMemory.reallocate(pointer, to: size, function: "krealloc")
}

/// A cache of `objectSize`-byte objects at `alignment` in the kernel heap (Linux's
/// kmem_cache_create); nil for a size outside 1...4096, a bad alignment or no memory.
/// - Complexity: O(1).
public func kmemCacheCreate(objectSize: Int, alignment: Int = 16) -> ObjectCache? {
  kernelMemory.makeObjectCache(objectSize: objectSize, alignment: alignment, function: "kmemCacheCreate")
}

/// One object of `cache`, or nil when no slab page can be had or the cache is destroyed.
/// - Complexity: O(1); a new slab costs one page-run allocation.
public func kmemCacheAlloc(_ cache: ObjectCache) -> UnsafeMutableRawPointer? {
  cache.allocate()
}

/// Returns an object to its cache. Bad input (another cache's object, a kmalloc
/// pointer, a double free, an interior or foreign pointer, a destroyed cache) is
/// reported as "kmemCacheFree: reason address" and changes nothing.
/// - Complexity: O(log ranges), as `kfree`.
public func kmemCacheFree(_ cache: ObjectCache, _ object: UnsafeMutableRawPointer) {
  do throws(HeapError) { try cache.free(object) } catch { badInputHandler(error.report("kmemCacheFree")) }
}

/// Destroys an empty cache. With live objects (or destroyed already) it is reported as
/// "kmemCacheDestroy: reason address", nothing changes, and false is returned.
/// - Complexity: O(slabs).
@discardableResult
public func kmemCacheDestroy(_ cache: ObjectCache) -> Bool {
  do throws(HeapError) {
    try cache.destroy()
    return true
  } catch {
    badInputHandler(error.report("kmemCacheDestroy"))
    return false
  }
}

/// Runs `Heap.check()` on the kernel heap; a failure naming "memory not set up" before
/// memInit.
/// - Complexity: O(blocks + size classes + free blocks).
public func heapCheck() -> HeapCheckFailure? {
  guard let heap = kernelMemory.heap else { return HeapCheckFailure(reason: KernelMemory.notSetUpReason, address: 0) }
  return heap.check()
}

/// Gives back what the per-CPU caches hold: every CPU's cached pages go back to the
/// buddy lists, every empty slab of every cache (all CPUs') and the heap's spare arena
/// go back to the page frames. Safe from any CPU at any time (it takes each cache's
/// lock in turn); the figures it leaves are exact once the other CPUs are idle. The
/// SMP test calls it at its final barrier before comparing page counts.
/// - Complexity: O(CPUs × (cached pages + size classes) + slabs on partial lists).
public func kmemDrainCaches() {
  kernelMemory.drainCaches()
  kernelAddressSpace?.releasePooledTables()
}

/// One zeroed page from the kernel's allocator, or nil when none is free.
/// - Complexity: O(maxOrder) plus zeroing 4 KiB.
public func allocPage() -> UnsafeMutableRawPointer? {
  kernelMemory.allocPages(order: 0, owner: .allocated, function: "allocPage")
}

/// 2^order zeroed, naturally aligned pages for `owner` (`.allocated`, the heap kinds,
/// `.slab`, `.pageTable`), or nil. A bad order or owner is reported.
/// - Complexity: O(maxOrder) plus O(2^order) entry writes and zeroing.
public func allocPages(order: Int, owner: PageOwner = .allocated) -> UnsafeMutableRawPointer? {
  kernelMemory.allocPages(order: order, owner: owner, function: "allocPages")
}

/// `pages` zeroed, physically contiguous pages (any count, beyond order 10 too), or nil
/// when no run that long is free. A count that is not a power of two is placed against
/// used memory, and the pages of the blocks it cuts that it does not use go back at
/// once. See `PageFrameAllocator.allocContiguous`.
/// - Complexity: O(pages) plus a bounded look at the free lists; O(RAM pages) for the
///   scan it falls back to when memory is fragmented.
public func allocContiguous(pages: Int, owner: PageOwner = .allocated) -> UnsafeMutableRawPointer? {
  kernelMemory.allocContiguous(pages: pages, owner: owner, function: "allocContiguous")
}

/// Returns a page from `allocPage`. Bad input (double free, a reserved page, another
/// allocator's page, a misaligned address, an address outside RAM) is reported as
/// "freePage: reason address" and changes nothing.
/// - Complexity: O(log ranges + maxOrder).
public func freePage(_ page: UnsafeMutableRawPointer) {
  kernelMemory.freePages(page, owner: .allocated, function: "freePage")
}

/// Returns a run from `allocPages(order:owner:)`; bad input is reported as for `freePage`.
/// - Complexity: O(log ranges + maxOrder) merges plus O(2^order) entry writes.
public func freePages(_ run: UnsafeMutableRawPointer, order: Int, owner: PageOwner = .allocated) {
  kernelMemory.freePages(run, order: order, owner: owner, function: "freePages")
}

/// Returns a run from `allocContiguous(pages:owner:)`; bad input is reported.
/// - Complexity: O(log ranges + pages) entry writes plus merges.
public func freeContiguous(_ run: UnsafeMutableRawPointer, pages: Int, owner: PageOwner = .allocated) {
  kernelMemory.freePages(run, pages: pages, owner: owner, function: "freeContiguous")
}

/// Gives back all but the first `keep` pages of a run from `allocContiguous`; from then
/// on it is a run of `keep` pages. Bad input (as for `freeContiguous`, or `keep` outside
/// 1...`pages`) is reported as "shrinkContiguous: reason address" and changes nothing.
/// - Complexity: O(log ranges + pages) entry writes plus merges.
public func shrinkContiguous(_ run: UnsafeMutableRawPointer, pages: Int, keep: Int, owner: PageOwner = .allocated) {
  kernelMemory.shrinkContiguous(run, pages: pages, keep: keep, owner: owner, function: "shrinkContiguous")
}
