import KernelSync
import PageFrames

/// What an `ObjectCache` holds now.
public struct ObjectCacheStatistics: Sendable, Equatable {
  /// The size asked for, and the bytes each object takes (rounded to the alignment).
  public var objectSize: Int
  public var slotSize: Int
  public var alignment: Int
  /// Objects per slab, and the slab's length in pages.
  public var objectsPerSlab: Int
  public var pagesPerSlab: Int
  public var slabs: Int
  /// Empty slabs kept against thrashing (besides the current one).
  public var emptySlabs: Int
  public var liveObjects: Int
  /// Bytes of the cache's slabs, and the share of them live objects use.
  public var slabBytes: Int
  public var utilization: Double
}

/// A cache of fixed-size kernel objects, like Linux's kmem_cache: objects of one size
/// and alignment packed into slabs of page frames, with no per-object header. The heap
/// keeps the cache's state (in one of its blocks) and lends it the page frames.
///
/// A handle: copies name the same cache. `destroy` is refused while objects are live;
/// once it succeeds, every call through any copy of the handle is refused as
/// `cacheDestroyed`: the cache's check word is cleared, and a new cache made later at
/// the same address carries another serial. (Reading the old state's block stays safe:
/// it is heap or free page memory, still mapped. Only bytes that reproduce the 64-bit
/// check word by chance could pass.)
///
/// Bad input has the same defined outcomes as `Heap.deallocate`: misaligned, foreign,
/// interior pointers and double frees throw and change nothing; an object of another
/// cache or of kmalloc is `wrongCache`.
public struct ObjectCache {
  let cache: UnsafeMutablePointer<SlabCache>
  /// The cache's serial in its heap: a handle names one cache, never a later one at the
  /// same address.
  let serial: UInt
  public let heap: Heap

  /// A cache for objects of `objectSize` bytes at `alignment` in `heap`.
  ///
  /// - Parameters:
  ///   - objectSize: 1...4096 bytes.
  ///   - alignment: a power of two from 16 to 4096 (smaller values are raised to 16).
  /// - Returns: nil for a size or alignment out of range, a heap without page frames,
  ///   or no memory for the cache's state.
  /// - Complexity: O(1) plus one heap allocation.
  public init?(heap: Heap, objectSize: Int, alignment: Int = 16) {
    let aligned = max(alignment, 16)
    guard heap.control.pointee.frames != nil, alignment > 0, alignment & (alignment - 1) == 0,
      SlabCache.layout(size: objectSize, alignment: aligned) != nil,
      let block = heap.lockedAllocateBlock(SlabCache.slotBytes)
    else { return nil }
    let cache = (block + SlabCache.prefixBytes).bindMemory(to: SlabCache.self, capacity: 1)
    cache.prefix.initializeMemory(as: UInt8.self, repeating: 0, count: SlabCache.prefixBytes)
    let cpu = CPU.current
    guard heap.cachesLock.lock(cpu: cpu) == nil else {
      try? heap.deallocate(block)
      return nil
    }
    defer { heap.cachesLock.unlock(cpu: cpu) }
    heap.objectCachesMade &+= 1
    let serial = heap.objectCachesMade
    cache.initialize(to: SlabCache(
      size: objectSize, alignment: aligned, kind: SlabCache.kindObjectCache,
      address: UInt(bitPattern: cache), heapSecret: heap.control.pointee.slabSecret, serial: serial))
    heap.linkObjectCache(cache)
    self.cache = cache
    self.serial = serial
    self.heap = heap
  }

  /// Whether the handle still names a live cache of its heap.
  var isLive: Bool {
    cache.pointee.check == SlabCache.checkWord(
      address: UInt(bitPattern: cache), heapSecret: heap.control.pointee.slabSecret, kind: SlabCache.kindObjectCache, serial: serial)
  }

  /// One object (contents undefined), or nil when no slab page can be had or the cache
  /// was destroyed.
  /// - Complexity: O(1); a new slab costs one page-run allocation.
  public func allocate() -> UnsafeMutableRawPointer? {
    guard isLive else { return nil }
    let cpu = CPU.current
    guard cache.lock.lock(cpu: cpu) == nil else { return nil }
    defer { cache.lock.unlock(cpu: cpu) }
    guard isLive else { return nil }
    return heap.slabAllocate(cache)
  }

  /// Returns an object of this cache.
  /// - Throws: `HeapError`: `cacheDestroyed`; `misaligned`, `outsideHeap`,
  ///   `interiorPointer`, `doubleFree`, `corruptSlab` as `Heap.deallocate`; `wrongCache`
  ///   for a pointer that is a live object of another cache, a kmalloc block or object,
  ///   or a large allocation. Nothing changes then.
  /// - Complexity: O(1): one page-entry lookup.
  public func free(_ object: UnsafeMutableRawPointer) throws(HeapError) {
    guard isLive else { throw HeapError(.cacheDestroyed, UInt(bitPattern: object)) }
    let cpu = CPU.current
    guard let slab = try heap.lockSlab(holding: object, cpu: cpu) else {
      // Not a slab object: the exact reason from the heap's own checks, under its lock.
      guard heap.heapLock.lock(cpu: cpu) == nil else { throw HeapError(.reentered, UInt(bitPattern: object)) }
      defer { heap.heapLock.unlock(cpu: cpu) }
      if case .slabObject = try heap.locate(object) {
        // A slab that changed under `lockSlab`: given back since the object was freed.
        throw HeapError(.doubleFree, UInt(bitPattern: object))
      }
      throw HeapError(.wrongCache, UInt(bitPattern: object))
    }
    let holder = slab.cache
    defer { holder.lock.unlock(cpu: cpu) }
    guard holder == cache else { throw HeapError(.wrongCache, UInt(bitPattern: object)) }
    guard case .slabObject(let slab, let index) = try heap.locateObject(object, inCheckedSlab: slab) else { return }
    heap.slabFree(slab, index: index)
  }

  /// Gives the cache's empty slabs back to the page allocator.
  /// - Complexity: O(slabs on the partial list).
  public func shrink() {
    guard isLive else { return }
    let cpu = CPU.current
    guard cache.lock.lock(cpu: cpu) == nil else { return }
    defer { cache.lock.unlock(cpu: cpu) }
    heap.shrink(cache)
  }

  /// The cache's figures; nil once destroyed.
  /// - Complexity: O(slabs).
  public var statistics: ObjectCacheStatistics? {
    guard isLive else { return nil }
    let cpu = CPU.current
    guard cache.lock.lock(cpu: cpu) == nil else { return nil }
    defer { cache.lock.unlock(cpu: cpu) }
    let c = cache.pointee
    let live = heap.liveObjects(cache)
    let bytes = c.slabs * (Page.size << c.slabOrder)
    return ObjectCacheStatistics(
      objectSize: c.requestedSize, slotSize: c.slotSize, alignment: c.alignment, objectsPerSlab: c.capacity,
      pagesPerSlab: 1 << c.slabOrder, slabs: c.slabs, emptySlabs: c.emptySlabs, liveObjects: live,
      slabBytes: bytes, utilization: bytes == 0 ? 0 : Double(live * c.requestedSize) / Double(bytes))
  }

  /// Destroys the cache: its slabs go back to the page allocator and its state to the
  /// heap.
  /// - Throws: `cacheInUse` while objects are live (nothing changes), `cacheDestroyed`
  ///   when it is gone already.
  /// - Complexity: O(slabs).
  public func destroy() throws(HeapError) {
    guard isLive else { throw HeapError(.cacheDestroyed, UInt(bitPattern: cache)) }
    let cpu = CPU.current
    guard heap.cachesLock.lock(cpu: cpu) == nil else { throw HeapError(.reentered, UInt(bitPattern: cache)) }
    guard cache.lock.lock(cpu: cpu) == nil else {
      heap.cachesLock.unlock(cpu: cpu)
      throw HeapError(.reentered, UInt(bitPattern: cache))
    }
    // Two CPUs destroying one cache: the second finds it dead under the locks.
    guard isLive, heap.liveObjects(cache) == 0 else {
      let dead = !isLive
      cache.lock.unlock(cpu: cpu)
      heap.cachesLock.unlock(cpu: cpu)
      throw HeapError(dead ? .cacheDestroyed : .cacheInUse, UInt(bitPattern: cache))
    }
    heap.shrink(cache)
    cache.pointee.check = 0
    cache.lock.unlock(cpu: cpu)
    heap.unlinkObjectCache(cache)
    heap.cachesLock.unlock(cpu: cpu)
    // Cannot throw: the state is a live block of this heap.
    try? heap.deallocate(cache.prefix)
  }
}

extension Heap {
  func linkObjectCache(_ cache: UnsafeMutablePointer<SlabCache>) {
    let head = objectCachesHead
    cache.nextCache = head
    cache.previousCache = 0
    if let first = UnsafeMutablePointer<SlabCache>(bitPattern: head) { first.previousCache = UInt(bitPattern: cache) }
    objectCachesHead = UInt(bitPattern: cache)
  }

  func unlinkObjectCache(_ cache: UnsafeMutablePointer<SlabCache>) {
    let next = cache.nextCache, previous = cache.previousCache
    if let after = UnsafeMutablePointer<SlabCache>(bitPattern: next) { after.previousCache = previous }
    if let before = UnsafeMutablePointer<SlabCache>(bitPattern: previous) {
      before.nextCache = next
    } else {
      objectCachesHead = next
    }
  }
}
