// The sampling detector's side of the heap: attaching a `GuardedPool`, and resizing its
// objects. `allocate`, `deallocate`, `usableSize` and the object caches route to the pool
// themselves (a countdown per CPU, and one range check on free).
extension Heap {
  /// Attaches `pool`: from now on one allocation in `pool.interval` per CPU (kmalloc,
  /// aligned kmalloc up to a page, object caches) comes from it, and its objects are
  /// freed, resized and measured through this heap as any other.
  /// - Returns: false, changing nothing, when a pool is attached already.
  /// - Precondition: no other CPU uses the heap yet (boot, or a host test's set-up).
  /// - Complexity: O(1).
  @discardableResult
  public func attach(_ pool: GuardedPool) -> Bool {
    guard config.pointee.guardedPool == nil else { return false }
    config.pointee.guardedPool = pool
    return true
  }

  /// The attached pool, if any.
  public var guardedPool: GuardedPool? { config.pointee.guardedPool }

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
