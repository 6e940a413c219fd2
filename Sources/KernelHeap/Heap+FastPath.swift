import KernelSync
import PageFrames

// The fast paths of `allocate` and `deallocate`: the usual case of each, written so
// that it calls nothing (a leaf function, with no frame to build), and declines
// whatever is unusual without changing anything. A declined call takes the general
// path, which handles every case, reports bad input and moves slabs between lists:
//
// | declined when | the general path |
// |---|---|
// | the CPU number needs a call (`CPU.currentWithoutCalls` is nil) | calls `CPU.current` |
// | the cache's lock is held (another CPU, or this one re-entered) | waits, or says `reentered` |
// | the sampling detector's countdown would run out | samples the allocation |
// | no current slab, its check word is wrong, its list is empty | takes a fresh object or another slab, or reports |
// | the next link fails its check (a write after free) | reports and cuts the list |
// | the pointer is not a size-class object whose bit is set | reports the reason |
// | the free moves its slab (full to partial, or it empties) | moves or releases the slab |
extension Heap {
  /// The current slab's first free object of `size`'s class on this CPU, or nil when
  /// anything is unusual (see above); nothing changes then.
  /// - Complexity: O(1).
  @inline(__always)
  func allocateFast(_ size: Int) -> UnsafeMutableRawPointer? {
    guard UInt(bitPattern: size) <= UInt(SlabClass.limit), let caches = config.pointee.classCaches,
      let cpu = CPU.currentWithoutCalls
    else { return nil }
    return classCache(caches, size: size, cpu: cpu).withLockIfFree(cpu: cpu) { cache in pop(&cache) } ?? nil
  }

  /// `allocateFast` under the cache's lock.
  @inline(__always)
  private func pop(_ cache: inout SlabCache) -> UnsafeMutableRawPointer? {
    // Fields read together are neighbours: one load pair each.
    let current = cache.current
    let countdown = cache.sampleCountdown
    guard countdown > 1, current != 0 else { return nil }
    let slab = Slab(address: current)
    guard slab.check == current ^ cache.slabCheckBase else { return nil }
    let index = slab.headIndex
    let inUse = slab.inUse
    // `noObject` (an empty list) fails this compare too.
    guard UInt(index) < UInt(bitPattern: cache.capacity) else { return nil }
    let object = cache.objectAddress(Int(index), in: slab)
    let next = cache.encode(UnsafeRawPointer(bitPattern: object).unsafelyUnwrapped.load(as: UInt.self), at: object)
    // The link ends the list or names another used, free object of this slab.
    guard next == Slab.endOfList || next < UInt(slab.fresh) && next != UInt(index) && !slab.isAllocated(Int(next)) else {
      return nil
    }
    cache.sampleCountdown = countdown &- 1
    slab.bitmapWord(Int(index)).pointee |= Slab.bit(Int(index))
    slab.headIndex = UInt32(truncatingIfNeeded: next)
    slab.inUse = inUse &+ 1
    return UnsafeMutableRawPointer(bitPattern: object).unsafelyUnwrapped
  }

  /// Frees `pointer` when that is the usual case: an allocated object of a size class
  /// whose slab stays on its list (the current slab, or a partial one it does not
  /// empty). Otherwise returns false and changes nothing: the caller then calls
  /// `deallocate`, which handles and reports every case. A non-throwing function with
  /// no frame, for a kernel's `kfree` to try first.
  /// - Complexity: O(1): one page-entry load in the first RAM range.
  @inline(never)
  public func deallocateOnFastPath(_ pointer: UnsafeMutableRawPointer) -> Bool { freeFast(pointer) }

  /// `deallocateOnFastPath`, inline.
  @inline(__always)
  func freeFast(_ pointer: UnsafeMutableRawPointer) -> Bool {
    guard let cpu = CPU.currentWithoutCalls, let slab = slabRun(holding: pointer) else { return false }
    // A size class's slab: an object cache's carries `Slab.objectCacheMark` as well.
    let check = slab.check
    guard check == Slab.checkWord(slab.address, slab.cacheAddress, config.pointee.slabSecret) else { return false }
    return SpinLocked<SlabCache>(at: UnsafeMutableRawPointer(bitPattern: slab.cacheAddress).unsafelyUnwrapped)
      .withLockIfFree(cpu: cpu) { cache in push(pointer, slab, check, &cache) } ?? false
  }

  /// `freeFast` under the cache's lock.
  @inline(__always)
  private func push(_ pointer: UnsafeMutableRawPointer, _ slab: Slab, _ check: UInt, _ cache: inout SlabCache) -> Bool {
    // Unchanged since it was read before the lock: still this size class's slab.
    guard slab.check == check else { return false }
    let object = UInt(bitPattern: pointer)
    guard let index = cache.objectIndex(object, in: slab), slab.isAllocated(index) else { return false }
    let head = slab.headIndex
    let inUse = slab.inUse &- 1
    let list = slab.list
    guard list == Slab.listCurrent || list == Slab.listPartial && inUse != 0 else { return false }
    slab.bitmapWord(index).pointee &= ~Slab.bit(index)
    pointer.storeBytes(of: cache.encode(SlabCache.link(head), at: object), as: UInt.self)
    slab.headIndex = UInt32(truncatingIfNeeded: index)
    slab.inUse = inUse
    return true
  }
}
