import KernelSync

// The sampling detector's side of the heap: attaching a `GuardedPool`, the sampling
// count each cache keeps, and resizing pool objects. `allocate`, the object caches and
// aligned allocations take the sampled allocation to the pool; `deallocate`,
// `reallocate` and `usableSize` find pool objects on their slow paths.
extension Heap {
  /// Attaches `pool`: from now on one allocation in `pool.interval` of each size class
  /// on each CPU (kmalloc, and aligned kmalloc up to a page) and of each object cache
  /// comes from it; its objects are freed, resized and measured through
  /// this heap as any other. The count lives in each cache, beside its current slab: the
  /// fast path decrements it whether a pool is attached or not, so attaching one adds
  /// nothing to it.
  /// - Returns: false, changing nothing, when a pool is attached already.
  /// - Precondition: no other CPU uses the heap yet (boot, or a host test's set-up).
  /// - Complexity: O(size classes × CPU slots + object caches).
  @discardableResult
  public func attach(_ pool: GuardedPool) -> Bool {
    guard config.pointee.guardedPool == nil else { return false }
    config.pointee.guardedPool = pool
    setSamplingInterval(pool.interval)
    return true
  }

  /// Samples one allocation in `interval` from now on (as Linux's
  /// `kfence.sample_interval`, which can change at run time), in every cache: the size
  /// classes, the heap core's aligned blocks and every object cache. 0 pauses sampling
  /// (the pool's live objects stay checked).
  /// - Returns: false, changing nothing, without a pool or for a negative interval.
  /// - Complexity: O(size classes × CPU slots + object caches).
  @discardableResult
  public func setSamplingInterval(_ interval: Int) -> Bool {
    guard config.pointee.guardedPool != nil, interval >= 0 else { return false }
    let count = interval == 0 ? Int.max : interval
    config.pointee.sampleInterval = count
    let cpu = CPU.current
    _ = core.withLock(cpu: cpu) { $0.sampleCountdown = count }
    if let caches = config.pointee.classCaches {
      for index in 0..<classCacheCount {
        _ = classCache(caches, index).withLock(cpu: cpu) { $0.sampleCountdown = count }
      }
    }
    _ = cacheList.withLock(cpu: cpu) { list in
      list.forEachSlot { slot in
        _ = ObjectCacheList.cache(inSlot: slot).withLock(cpu: cpu) { $0.sampleCountdown = count }
      }
    }
    return true
  }

  /// The attached pool, if any.
  public var guardedPool: GuardedPool? { config.pointee.guardedPool }

  /// The attached pool when `pointer` lies in its range, else nil. Only the slow paths
  /// ask: a pool address is never in the direct map of RAM, so the page-entry lookup of
  /// the fast paths never takes it for a slab object.
  @inline(__always)
  func pool(holding pointer: UnsafeMutableRawPointer) -> GuardedPool? {
    guard let pool = config.pointee.guardedPool, pool.contains(UInt(bitPattern: pointer)) else { return nil }
    return pool
  }

  /// Counts one allocation from `cache`: true when it is the one to sample (the count
  /// then restarts). Called with the cache's lock held.
  @inline(__always)
  func takeSample(_ cache: inout SlabCache) -> Bool { takeSample(&cache.sampleCountdown) }

  /// Counts one allocation on `countdown` (a cache's, or the heap core's for aligned
  /// blocks): true when it is the one to sample; the count then restarts.
  @inline(__always)
  func takeSample(_ countdown: inout Int) -> Bool {
    let left = countdown &- 1
    countdown = left
    guard left <= 0 else { return false }
    countdown = config.pointee.sampleInterval
    return true
  }

  /// An object of `size` bytes at `alignment` from the attached pool for `cache`
  /// (0: kmalloc), or nil (no pool, or none it can serve).
  @inline(never)
  func allocateSampled(_ size: Int, alignment: Int, cache: UInt) -> UnsafeMutableRawPointer? {
    config.pointee.guardedPool?.allocate(size: size, alignment: alignment, cache: cache)
  }

  /// `reallocate` of a pool object: a new allocation (sampled or not), the bytes
  /// copied, the pool object freed. A pointer that is not a live pool object is reported
  /// by the pool as a bad free, and nil is returned.
  func reallocate(pooled pointer: UnsafeMutableRawPointer, in pool: GuardedPool, to size: Int) -> UnsafeMutableRawPointer? {
    guard let old = pool.size(of: pointer), size != 0 else {
      pool.free(pointer, cache: 0)
      return nil
    }
    guard let moved = allocate(size) else { return nil }
    moved.copyMemory(from: pointer, byteCount: min(old, size))
    pool.free(pointer, cache: 0)
    return moved
  }
}
