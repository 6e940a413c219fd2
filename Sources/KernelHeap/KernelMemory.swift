import PageFrames

/// The kernel's memory as one object: the page-frame allocator and the heap that grows
/// from it. memInit creates it and installs it in `kernelMemory`; host tests and second
/// kernels create their own. Both parts are handles over state that lives in the memory
/// they manage, and the object itself is noncopyable, so nothing can fork them.
///
/// Before it is set up (or after memInit failed) every entry point reports
/// `KernelMemory.notSetUpReason` to `badInputHandler` and returns nil or does nothing.
public struct KernelMemory: ~Copyable {
  private let parts: (frames: PageFrameAllocator, heap: Heap)?

  /// The reason reported by every entry point used before a successful memInit.
  public static let notSetUpReason: StaticString = "memory not set up (memInit not run, or it failed)"
  /// The reason reported when allocPages/allocContiguous get an owner an allocation
  /// cannot have (the address field carries the owner's raw value).
  public static let badOwnerReason: StaticString = "owner not accepted for an allocation"

  /// An object that is not set up yet.
  /// - Complexity: O(1).
  public init() { parts = nil }

  /// The object over a set-up page allocator and a heap that grows from it.
  /// - Complexity: O(1).
  public init(frames: PageFrameAllocator, heap: Heap) { parts = (frames, heap) }

  /// Whether memInit (or `init(frames:heap:)`) has set it up.
  public var isReady: Bool { parts != nil }
  /// The page-frame allocator, once set up.
  public var frames: PageFrameAllocator? { parts?.frames }
  /// The heap, once set up.
  public var heap: Heap? { parts?.heap }

  // MARK: Heap

  /// `size` bytes at a multiple of `alignment` (a power of two up to 4096), or nil;
  /// not set up: reported as `function`.
  /// - Complexity: O(1), as `Heap.allocate`.
  public func allocate(_ size: Int, alignment: Int = 16, function: StaticString) -> UnsafeMutableRawPointer? {
    guard let heap = ready(function, 0)?.heap else { return nil }
    return alignment == 16 ? heap.allocate(size) : heap.allocate(size, alignment: alignment)
  }

  /// `count * size` zeroed bytes; nil on overflow or no memory.
  /// - Complexity: O(1) plus zeroing.
  public func allocateZeroed(count: Int, size: Int, function: StaticString) -> UnsafeMutableRawPointer? {
    ready(function, 0)?.heap.allocateZeroed(count: count, size: size)
  }

  /// Frees a heap allocation; nil does nothing. Bad input is reported as
  /// "function: reason address" and changes nothing.
  /// - Complexity: O(1), as `Heap.deallocate`.
  public func free(_ pointer: UnsafeMutableRawPointer?, function: StaticString) {
    guard let pointer, let heap = ready(function, UInt(bitPattern: pointer))?.heap else { return }
    do {
      try heap.deallocate(pointer)
    } catch {
      badInputHandler(error.report(function))
    }
  }

  /// Resizes a heap allocation as `Heap.reallocate`; bad input is reported and gets nil.
  /// - Complexity: O(1) in place, O(size) when it moves.
  public func reallocate(_ pointer: UnsafeMutableRawPointer?, to size: Int, function: StaticString) -> UnsafeMutableRawPointer? {
    guard let heap = ready(function, UInt(bitPattern: pointer))?.heap else { return nil }
    do {
      return try heap.reallocate(pointer, to: size)
    } catch {
      badInputHandler(error.report(function))
      return nil
    }
  }

  // MARK: Object caches

  /// A new object cache in the kernel heap; nil (reported when memory is not set up)
  /// for a size outside 1...4096, an alignment that is not a power of two up to 4096,
  /// or no memory.
  /// - Complexity: O(1).
  public func makeObjectCache(objectSize: Int, alignment: Int, function: StaticString) -> ObjectCache? {
    guard let heap = ready(function, 0)?.heap else { return nil }
    return ObjectCache(heap: heap, objectSize: objectSize, alignment: alignment)
  }

  // MARK: Page frames

  /// 2^order pages for `owner`, zeroed when asked; nil when none is free. An order out of
  /// range or an owner `allocPages` does not accept is reported.
  /// - Complexity: as `PageFrameAllocator.allocPages`.
  public func allocPages(order: Int, owner: PageOwner, zeroed: Bool = true, function: StaticString) -> UnsafeMutableRawPointer? {
    guard let frames = ready(function, 0)?.frames, accepts(owner, function) else { return nil }
    guard order >= 0 && order <= Page.maxOrder else {
      badInputHandler(BadInputReport(function: function, reason: PageFrameFailure.badOrder.text, address: UInt(bitPattern: order)))
      return nil
    }
    return frames.allocPages(order: order, owner: owner, zeroed: zeroed)
  }

  /// `pages` contiguous pages for `owner`; nil when no such run is free. A count below 1
  /// or an owner that is not accepted is reported.
  /// - Complexity: as `PageFrameAllocator.allocContiguous`.
  public func allocContiguous(pages: Int, owner: PageOwner, zeroed: Bool = true, function: StaticString) -> UnsafeMutableRawPointer? {
    guard let frames = ready(function, 0)?.frames, accepts(owner, function) else { return nil }
    guard pages > 0 else {
      badInputHandler(BadInputReport(function: function, reason: PageFrameFailure.badOrder.text, address: UInt(bitPattern: pages)))
      return nil
    }
    return frames.allocContiguous(pages: pages, owner: owner, zeroed: zeroed)
  }

  /// Frees a run of 2^order pages (`pages == nil`) or of `pages` pages; bad input is
  /// reported as "function: reason address" and changes nothing.
  /// - Complexity: as `PageFrameAllocator.freePages` / `freeContiguous`.
  public func freePages(_ run: UnsafeMutableRawPointer, order: Int = 0, pages: Int? = nil, owner: PageOwner, function: StaticString) {
    guard let frames = ready(function, UInt(bitPattern: run))?.frames else { return }
    do throws(PageFrameError) {
      if let pages {
        try frames.freeContiguous(run, pages: pages, owner: owner)
      } else {
        try frames.freePages(run, order: order, owner: owner)
      }
    } catch {
      badInputHandler(error.report(function))
    }
  }

  /// See `kmemDrainCaches`.
  /// - Complexity: as `kmemDrainCaches`.
  public func drainCaches() {
    guard let parts else { return }
    parts.heap.releaseCachedMemory()
    parts.frames.drainHotPages()
  }

  /// The parts, or nil after reporting that memory is not set up.
  private func ready(_ function: StaticString, _ address: UInt) -> (frames: PageFrameAllocator, heap: Heap)? {
    if parts == nil { badInputHandler(BadInputReport(function: function, reason: KernelMemory.notSetUpReason, address: address)) }
    return parts
  }

  private func accepts(_ owner: PageOwner, _ function: StaticString) -> Bool {
    if owner.isAllocatable { return true }
    badInputHandler(BadInputReport(function: function, reason: KernelMemory.badOwnerReason, address: UInt(owner.rawValue)))
    return false
  }
}

/// The kernel's one memory object. memInit sets it up; until then every entry point
/// below reports "memory not set up".
nonisolated(unsafe) public var kernelMemory = KernelMemory()

/// Bytes memInit reserves for the initial heap.
public let kernelHeapInitialBytes = 1 << 20

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
/// - Complexity: O(1): one page-entry lookup decides the owner.
public func kfree(_ pointer: UnsafeMutableRawPointer?) {
  kernelMemory.free(pointer, function: "kfree")
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
/// - Complexity: O(1) in place, O(size) when moved.
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
/// - Complexity: O(1).
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
/// when no run that long is free. See `PageFrameAllocator.allocContiguous`.
/// - Complexity: O(pages) from a buddy run up to 1024 pages, else an O(RAM pages) scan.
public func allocContiguous(pages: Int, owner: PageOwner = .allocated) -> UnsafeMutableRawPointer? {
  kernelMemory.allocContiguous(pages: pages, owner: owner, function: "allocContiguous")
}

/// Returns a page from `allocPage`. Bad input (double free, a reserved page, another
/// allocator's page, a misaligned address, an address outside RAM) is reported as
/// "freePage: reason address" and changes nothing.
/// - Complexity: O(maxOrder).
public func freePage(_ page: UnsafeMutableRawPointer) {
  kernelMemory.freePages(page, owner: .allocated, function: "freePage")
}

/// Returns a run from `allocPages(order:owner:)`; bad input is reported as for `freePage`.
/// - Complexity: O(maxOrder) merges plus O(2^order) entry writes.
public func freePages(_ run: UnsafeMutableRawPointer, order: Int, owner: PageOwner = .allocated) {
  kernelMemory.freePages(run, order: order, owner: owner, function: "freePages")
}

/// Returns a run from `allocContiguous(pages:owner:)`; bad input is reported.
/// - Complexity: O(pages) entry writes plus merges.
public func freeContiguous(_ run: UnsafeMutableRawPointer, pages: Int, owner: PageOwner = .allocated) {
  kernelMemory.freePages(run, pages: pages, owner: owner, function: "freeContiguous")
}
