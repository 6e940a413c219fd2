// The sampling detector's side of the heap: attaching a `GuardedPool`, and resizing its
// objects. `allocate`, `deallocate`, `usableSize` and the object caches route to the pool
// themselves (a countdown per CPU, and one range check on free).
extension Heap {
  /// Attaches `pool`: from now on one allocation in `pool.interval` per CPU (kmalloc,
  /// aligned kmalloc up to a page, object caches) comes from it, and its objects are
  /// freed, resized and measured through this heap as any other.
  /// - Returns: false, changing nothing, when a pool is attached already or the pool's
  ///   CPU slots are not the heap's (`slots`).
  /// - Precondition: no other CPU uses the heap yet (boot, or a host test's set-up).
  /// - Complexity: O(1).
  @discardableResult
  public func attach(_ pool: GuardedPool) -> Bool {
    guard config.pointee.guardedPool == nil else { return false }
    guard pool.cpuSlotMask == config.pointee.slotMask else { return false }
    config.pointee.guardedPool = pool
    config.pointee.sampleCountdowns = pool.countdowns
    config.pointee.poolStart = pool.base
    config.pointee.poolBytes = pool.end &- pool.base
    return true
  }

  /// The attached pool, if any.
  public var guardedPool: GuardedPool? { config.pointee.guardedPool }

  /// Whether `pointer` lies in the attached pool's range (false without a pool).
  @inline(__always)
  func inPool(_ pointer: UnsafeMutableRawPointer) -> Bool {
    UInt(bitPattern: pointer) &- config.pointee.poolStart < config.pointee.poolBytes
  }

  /// `deallocate` of a pointer in the pool's range.
  @inline(never)
  func freePooled(_ pointer: UnsafeMutableRawPointer, cache: UInt) {
    config.pointee.guardedPool?.free(pointer, cache: cache)
  }

  /// The pool that serves this allocation on `cpu`, out of line.
  @inline(never)
  func samplingPool(_ cpu: Int) -> GuardedPool? {
    guard let pool = config.pointee.guardedPool else { return nil }
    return pool.refill(cpu) ? pool : nil
  }

  /// Whether this allocation on `cpu` is the sampled one: one load and a branch without
  /// a pool, a per-CPU count with one.
  @inline(__always)
  func sampled(_ cpu: Int) -> GuardedPool? {
    guard let countdowns = config.pointee.sampleCountdowns, GuardedPool.countDown(countdowns, cpu & config.pointee.slotMask)
    else { return nil }
    return samplingPool(cpu)
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
