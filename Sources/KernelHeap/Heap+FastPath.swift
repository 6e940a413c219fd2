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
// | the magazine is empty and: no current slab, its check word is wrong, its list is empty | takes a fresh object or another slab, or reports |
// | the next link fails its check (a write after free) | reports and cuts the list |
// | the pointer is not a size-class object whose bit is set | reports the reason |
// | the free moves its slab (full to partial, or it empties) | moves or releases the slab |
extension Heap {
  /// The newest object of the magazine of `size`'s class on this CPU, else the current
  /// slab's first free object, or nil when
  /// anything is unusual (see above); nothing changes then.
  /// - Complexity: O(1).
  @inline(__always)
  func allocateFast(_ size: Int) -> UnsafeMutableRawPointer? {
    // The bound is 0 without size-class caches: `classCaches` is set when it passes.
    guard UInt(bitPattern: size) < config.pointee.sizeClassBound, let cpu = CPU.currentWithoutCalls else { return nil }
    return classCache(config.pointee.classCaches.unsafelyUnwrapped, size: size, cpu: cpu).withLockIfFree(cpu: cpu) { cache in pop(&cache) } ?? nil
  }

  /// `allocateFast` under the cache's lock.
  @inline(__always)
  private func pop(_ cache: inout SlabCache) -> UnsafeMutableRawPointer? {
    // Fields read together are neighbours: one load pair each.
    let countdown = cache.sampleCountdown
    let cached = cache.magazineCount
    // cached > 0 and countdown > 1 as one sign test: both loads come before the one
    // branch, so they are one load pair.
    if (cached &- 1) | (countdown &- 2) >= 0 {
      cache.sampleCountdown = countdown &- 1
      return Heap.popMagazine(&cache, count: cached)
    }
    let current = cache.current
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
  func freeFast(_ pointer: UnsafeMutableRawPointer?) -> Bool {
    // No alignment or nil test: `objectIndex` refuses whatever is not an object's start.
    let object = UInt(bitPattern: pointer)
    guard let cpu = CPU.currentWithoutCalls, let slab = slabRun(at: object) else { return false }
    // A size class's slab: an object cache's carries `Slab.objectCacheMark` as well.
    let check = slab.check
    guard check == Slab.checkWord(slab.address, slab.cacheAddress, config.pointee.slabSecret) else { return false }
    return SpinLocked<SlabCache>(at: UnsafeMutableRawPointer(bitPattern: slab.cacheAddress).unsafelyUnwrapped)
      .withLockIfFree(cpu: cpu) { cache in push(object, slab, check, &cache) } ?? false
  }

  /// `freeFast` under the cache's lock.
  @inline(__always)
  private func push(_ object: UInt, _ slab: Slab, _ check: UInt, _ cache: inout SlabCache) -> Bool {
    // Unchanged since it was read before the lock: still this size class's slab.
    guard slab.check == check else { return false }
    guard let index = cache.objectIndex(object, in: slab) else { return false }
    let word = slab.bitmapWord(index)
    let bit = Slab.bit(index)
    guard word.pointee & bit != 0 else { return false }
    // An object of the current slab goes to the magazine while it has room. The two
    // tests are one (the count is 0 ... `magazineSize`): both loads come before the one
    // branch, so the neighbours are one load pair.
    let cached = cache.magazineCount
    let current = cache.current
    if (slab.address ^ current) | UInt(bitPattern: cached &>> SlabCache.magazineShift) == 0 {
      Heap.putInMagazine(&cache, count: cached, object: object, word: word, bit: bit, index: index)
      return true
    }
    let head = slab.headIndex
    let inUse = slab.inUse &- 1
    let list = slab.list
    guard list == Slab.listCurrent || list == Slab.listPartial && inUse != 0 else { return false }
    word.pointee &= ~bit
    UnsafeMutableRawPointer(bitPattern: object).unsafelyUnwrapped.storeBytes(of: cache.encode(SlabCache.link(head), at: object), as: UInt.self)
    slab.headIndex = UInt32(truncatingIfNeeded: index)
    slab.inUse = inUse
    return true
  }
}
