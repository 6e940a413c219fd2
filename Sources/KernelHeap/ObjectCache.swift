import KernelSync
import PageFrames

/// What an `ObjectCache` holds now.
public struct ObjectCacheStatistics: Sendable, Equatable {
  /// The size asked for, and the bytes each object takes (rounded to the alignment).
  public var objectSize: Int
  /// The bytes each object takes: `objectSize` rounded up to `alignment`.
  public var slotSize: Int
  /// The objects' alignment: the one asked for, at least 16.
  public var alignment: Int
  /// Objects per slab, and the slab's length in pages.
  public var objectsPerSlab: Int
  /// The slab's length in pages (a power of two).
  public var pagesPerSlab: Int
  /// Slabs the cache holds now, empty ones included.
  public var slabs: Int
  /// Empty slabs kept against thrashing (besides the current one).
  public var emptySlabs: Int
  /// Objects allocated from the cache and not yet freed.
  public var liveObjects: Int
  /// Bytes of the cache's slabs, and the share of them live objects use.
  public var slabBytes: Int
  /// The share of `slabBytes` that live objects use (`liveObjects * objectSize /
  /// slabBytes`, 0 with no slabs).
  public var utilization: Double
}

/// A cache of fixed-size kernel objects, like Linux's kmem_cache: objects of one size
/// and alignment packed into slabs of page frames, with no per-object header. The heap
/// keeps the cache's state (in one of its blocks) and lends it the page frames.
///
/// A handle: copies name the same cache. `destroy` is refused while objects are live;
/// once it succeeds, every call through any copy of the handle is refused as
/// `cacheDestroyed`, also on another CPU at the same moment: the cache's lock and state
/// stay where they are (the heap never takes a destroyed cache's slot back; the next
/// cache made reuses it), every call checks the cache's check word under its lock, and
/// a new cache in the same slot carries another serial.
///
/// Bad input has the same defined outcomes as `Heap.deallocate`: misaligned, foreign,
/// interior pointers and double frees throw and change nothing; an object of another
/// cache or of kmalloc is `wrongCache`.
public struct ObjectCache {
  /// The cache's lock and state, in its slot.
  let cache: SpinLocked<SlabCache>
  /// The cache's serial in its heap: a handle names one cache, never a later one in the
  /// same slot.
  let serial: UInt
  /// The heap that keeps the cache's state and lends it page frames.
  public let heap: Heap

  /// A cache for objects of `objectSize` bytes at `alignment` in `heap`.
  ///
  /// - Parameters:
  ///   - heap: the heap that keeps the cache's state; it must have page frames.
  ///   - objectSize: 1...4096 bytes.
  ///   - alignment: a power of two from 16 to 4096 (smaller values are raised to 16).
  /// - Returns: nil for a size or alignment out of range, a heap without page frames,
  ///   no memory for the cache's state, or a call from inside the heap on this CPU.
  /// - Complexity: O(1) plus one heap allocation.
  public init?(heap: Heap, objectSize: Int, alignment: Int = 16) {
    let aligned = max(alignment, 16)
    guard heap.frames != nil, alignment > 0, alignment & (alignment - 1) == 0,
      SlabCache.layout(size: objectSize, alignment: aligned) != nil
    else { return nil }
    let cpu = CPU.current
    let secret = heap.config.pointee.slabSecret
    let made = heap.cacheList.withLock(cpu: cpu) { list -> (SpinLocked<SlabCache>, UInt)? in
      let serial = list.made &+ 1
      func state(_ cell: SpinLocked<SlabCache>) -> SlabCache {
        var state = SlabCache(
          size: objectSize, alignment: aligned, kind: SlabCache.kindObjectCache,
          address: UInt(bitPattern: cell.address), heapSecret: secret, serial: serial)
        state.sampleCountdown = heap.config.pointee.sampleInterval
        return state
      }
      let cache: SpinLocked<SlabCache>
      if let slot = list.takeRetired() {
        // A slot another CPU may still lock through a stale handle: its lock stays a
        // lock, and the new state goes in under it.
        cache = ObjectCacheList.cache(inSlot: slot)
        guard cache.withLock(cpu: cpu, { $0 = state(cache) }) != nil else {
          list.keepRetired(slot)
          return nil
        }
        list.link(slot)
      } else {
        // Lock order: the list, then the heap.
        guard let block = heap.core.withLock(cpu: cpu, { $0.allocateBlock(ObjectCacheList.slotBytes) }) ?? nil else { return nil }
        let slot = UInt(bitPattern: block)
        cache = ObjectCacheList.cache(inSlot: slot)
        _ = SpinLocked(initializing: cache.address, to: state(cache))
        list.link(slot)
      }
      list.made = serial
      return (cache, serial)
    } ?? nil
    guard let made else { return nil }
    cache = made.0
    serial = made.1
    self.heap = heap
  }

  /// Whether `state` is this handle's cache, alive.
  @inline(__always)
  func isLive(_ state: SlabCache) -> Bool {
    state.check == SlabCache.checkWord(
      address: UInt(bitPattern: cache.address), heapSecret: heap.config.pointee.slabSecret,
      kind: SlabCache.kindObjectCache, serial: serial)
  }

  /// One object, or nil when no slab page can be had, the cache is destroyed, or this
  /// CPU is inside the heap already.
  /// - Complexity: O(1); a new slab costs one page-run allocation.
  public func allocate() -> UnsafeMutableRawPointer? {
    let cpu = CPU.current
    let object = cache.withLock(cpu: cpu) { state in
      isLive(state) ? (heap.takeSample(&state) ? Heap.sampleMarker : heap.slabAllocate(&state)) : nil
    } ?? nil
    guard object == Heap.sampleMarker else { return object }
    // The sampled allocation: from the pool outside the lock, else as usual.
    let geometry = cache.snapshot.pointee
    return heap.allocateSampled(geometry.requestedSize, alignment: geometry.alignment, cache: serial)
      ?? cache.withLock(cpu: cpu) { state in isLive(state) ? heap.slabAllocate(&state) : nil } ?? nil
  }

  /// Returns an object to the cache.
  /// - Throws: `cacheDestroyed`; `wrongCache` for a pointer that is a live object of
  ///   another cache, a kmalloc block or object, or anything else of the heap that is
  ///   not one of this cache's objects; the heap's own errors (misaligned, interior,
  ///   double free, foreign) as `Heap.deallocate`; `reentered`. Nothing changes then.
  /// - Complexity: O(log ranges).
  public func free(_ object: UnsafeMutableRawPointer) throws(HeapError) {
    let cpu = CPU.current
    guard let live = cache.withLock(cpu: cpu, { isLive($0) }) else { throw HeapError(.reentered, UInt(bitPattern: object)) }
    guard live else { throw HeapError(.cacheDestroyed, UInt(bitPattern: object)) }
    if let pool = heap.config.pointee.guardedPool, pool.free(object, cache: serial) { return }
    let mine = cache.address
    let freed: Void? = try heap.withSlabLocked(holding: object, cpu: cpu) { (state, slab, index) throws(HeapError) in
      guard slab.cacheAddress == UInt(bitPattern: mine), isLive(state) else { throw HeapError(.wrongCache, UInt(bitPattern: object)) }
      heap.slabFree(&state, slab, index: index)
    }
    if freed != nil { return }
    // Not a slab object: the exact reason from the heap's own checks, under its lock.
    let failure = try heap.core.withLock(cpu: cpu) { (core) throws(HeapError) -> HeapError in
      // A slab that changed under `withSlabLocked`: given back since the object was freed.
      if case .slabObject = try core.locate(object) { return HeapError(.doubleFree, UInt(bitPattern: object)) }
      return HeapError(.wrongCache, UInt(bitPattern: object))
    }
    throw failure ?? HeapError(.reentered, UInt(bitPattern: object))
  }

  /// Gives every empty slab of the cache back to the page allocator.
  /// - Complexity: O(slabs on the partial list).
  public func shrink() {
    _ = cache.withLock(cpu: CPU.current) { state in if isLive(state) { heap.shrink(&state) } }
  }

  /// The cache's figures, or nil once it is destroyed (or from inside the heap).
  /// - Complexity: O(slabs).
  public var statistics: ObjectCacheStatistics? {
    cache.withLock(cpu: CPU.current) { c -> ObjectCacheStatistics? in
      guard isLive(c) else { return nil }
      let live = heap.liveObjects(c)
      let bytes = c.slabs * (Page.size << c.slabOrder)
      return ObjectCacheStatistics(
        objectSize: c.requestedSize, slotSize: c.slotSize, alignment: c.alignment, objectsPerSlab: c.capacity,
        pagesPerSlab: 1 << c.slabOrder, slabs: c.slabs, emptySlabs: c.emptySlabs, liveObjects: live,
        slabBytes: bytes, utilization: bytes == 0 ? 0 : Double(live * c.requestedSize) / Double(bytes))
    } ?? nil
  }

  /// Destroys the cache: its empty slabs go back to the page allocator, and every later
  /// call through any handle to it is refused. Safe while other CPUs still call it: a
  /// call that took the cache's lock first finishes (an allocation then makes destroy
  /// refuse), one that comes after is refused.
  /// - Throws: `cacheInUse` while objects are live (in its slabs, or sampled into the
  ///   heap's guarded pool), `cacheDestroyed` when destroyed
  ///   already, `reentered`; nothing changes then.
  /// - Complexity: O(slabs), plus O(pool slots) with a guarded pool attached.
  public func destroy() throws(HeapError) {
    let cpu = CPU.current
    let slot = UInt(bitPattern: cache.address) - UInt(ObjectCacheList.cellOffset)
    let outcome = heap.cacheList.withLock(cpu: cpu) { list -> HeapFailure? in
      cache.withLock(cpu: cpu) { state -> HeapFailure? in
        // Two CPUs destroying one cache: the second finds it dead under the locks.
        guard isLive(state) else { return .cacheDestroyed }
        guard heap.liveObjects(state) == 0, (heap.guardedPool?.liveObjects(ofCache: serial) ?? 0) == 0 else {
          return .cacheInUse
        }
        heap.shrink(&state)
        state.check = 0
        list.retire(slot)
        return nil
      } ?? .reentered
    }
    guard let outcome else { throw HeapError(.reentered, UInt(bitPattern: cache.address)) }
    if let outcome { throw HeapError(outcome, UInt(bitPattern: cache.address)) }
  }
}
