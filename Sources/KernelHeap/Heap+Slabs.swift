import KernelSync
import PageFrames

// Slab caches: the heap's small-object path. A heap with page frames serves requests up
// to `SlabClass.limit` from one `SlabCache` per size class, and `ObjectCache`s from
// their own. Slab pages come from the page frames as `.slab` runs tagged with the
// heap's id, so `kfree` finds a slab object's slab through its page entry, as it finds
// growth arenas and large allocations.
extension Heap {
  // MARK: Allocation

  /// An object from `cache`: the magazine's newest, else the current slab's free-list
  /// head, else the slow path. The link read from the object is checked before it
  /// becomes the new head.
  /// - Complexity: O(1); the slow path adds one page-run allocation at most.
  @inline(__always)
  func slabAllocate(_ cache: inout SlabCache) -> UnsafeMutableRawPointer? {
    if let object = Heap.takeFromMagazine(&cache) { return object }
    let current = cache.current
    if current != 0 {
      let slab = Slab(address: current)
      // The header may have been overrun from the slab below: its check word first.
      guard slab.check == current ^ cache.slabCheckBase else { return abandonCurrent(&cache) }
      let index = slab.headIndex
      // `noObject` (an empty list) fails this compare too.
      if UInt(index) < UInt(bitPattern: cache.capacity) {
        let object = cache.objectAddress(Int(index), in: slab)
        let next = cache.encode(UnsafeRawPointer(bitPattern: object).unsafelyUnwrapped.load(as: UInt.self), at: object)
        // The link must end the list or name another used, free object of this slab.
        if next == Slab.endOfList || next < UInt(slab.fresh) && next != UInt(index) && !slab.isAllocated(Int(next)) {
          slab.headIndex = UInt32(truncatingIfNeeded: next)
        } else {
          cutFreeList(slab, at: object)
        }
        return hand(object, Int(index), slab)
      }
    }
    return slabAllocateSlow(&cache)
  }

  /// Marks object `index` (at `object`) of `slab` allocated.
  @inline(__always)
  private func hand(_ object: UInt, _ index: Int, _ slab: Slab) -> UnsafeMutableRawPointer {
    slab.bitmapWord(index).pointee |= Slab.bit(index)
    slab.inUse = slab.inUse &+ 1
    return UnsafeMutableRawPointer(bitPattern: object)!
  }

  /// The link in free object `object` was overwritten (a write after free): report it,
  /// and cut the slab's free list there instead of following it. The objects behind the
  /// cut stay unused until the slab empties and goes back to the page allocator.
  @inline(never)
  private func cutFreeList(_ slab: Slab, at object: UInt) {
    badInputHandler(HeapError(.freeListCorrupted, object).report("slab_alloc"))
    slab.quarantined = true
    slab.headIndex = Slab.noObject
  }

  /// The current slab's header fails its checks (overwritten, by an overflow out of
  /// the memory below it, say): report it and stop using the slab. It stays out of
  /// every list, so `heapCheck` keeps reporting the damage; allocation goes on from
  /// another slab.
  @inline(never)
  private func abandonCurrent(_ cache: inout SlabCache) -> UnsafeMutableRawPointer? {
    badInputHandler(HeapError(.corruptSlab, cache.current).report("slab_alloc"))
    // The magazine's objects stay in the abandoned slab with it.
    cache.magazineCount = 0
    cache.current = 0
    return slabAllocateSlow(&cache)
  }

  /// The slow path: a never-used object of the current slab, else a slab from the
  /// partial list, else a new slab.
  /// - Precondition: the magazine is empty (the current slab may change here).
  private func slabAllocateSlow(_ cache: inout SlabCache) -> UnsafeMutableRawPointer? {
    if cache.current != 0 {
      let slab = Slab(address: cache.current)
      if slab.fresh < cache.capacity { return takeFresh(slab, &cache) }
      // Exhausted: onto the full list.
      cache.current = 0
      slab.list = Slab.listFull
      push(slab, onto: &cache.full)
    }
    if cache.partial != 0 {
      let slab = Slab(address: cache.partial)
      unlink(slab, from: &cache.partial)
      if slab.inUse == 0 { cache.emptySlabs -= 1 }
      slab.list = Slab.listCurrent
      cache.current = slab.address
      // A slab joins the partial list through a free, so its list is not empty.
      return slabAllocate(&cache)
    }
    guard let slab = newSlab(&cache) else { return nil }
    cache.current = slab.address
    return takeFresh(slab, &cache)
  }

  /// The next never-used object of `slab`.
  private func takeFresh(_ slab: Slab, _ cache: inout SlabCache) -> UnsafeMutableRawPointer {
    let index = slab.fresh
    slab.fresh = index + 1
    return hand(cache.objectAddress(index, in: slab), index, slab)
  }

  /// A slab of 2^slabOrder pages for `cache`, within the heap's ceiling, or nil.
  private func newSlab(_ cache: inout SlabCache) -> Slab? {
    let order = cache.slabOrder
    // The heap lock guards the ceiling and the byte count (the cache lock is held).
    guard let run = core.withLock(cpu: CPU.current, { core -> UnsafeMutableRawPointer? in
      let bytes = Page.size << order
      guard let frames = core.frames, core.heldBytes + bytes <= core.growthCeiling,
        let run = frames.allocPages(order: order, owner: .slab, tag: core.tag, zeroed: false)
      else { return nil }
      core.slabBytes += bytes
      return run
    }) ?? nil else { return nil }
    let slab = Slab(run)
    slab.initialize(cache: cache.address, checkBase: cache.slabCheckBase)
    cache.slabs += 1
    return slab
  }

  // MARK: Free

  /// Frees object `index` of `slab` (located and checked): it heads its slab's list.
  /// A full slab moves to the partial list; an empty one beyond the cache's keep goes
  /// back to the page allocator.
  /// - Complexity: O(1); giving a slab back costs O(2^order) page-entry writes.
  @inline(__always)
  func slabFree(_ cache: inout SlabCache, _ slab: Slab, index: Int) {
    let object = cache.objectAddress(index, in: slab)
    slab.bitmapWord(index).pointee &= ~Slab.bit(index)
    UnsafeMutableRawPointer(bitPattern: object).unsafelyUnwrapped.storeBytes(of: cache.encode(SlabCache.link(slab.headIndex), at: object), as: UInt.self)
    slab.headIndex = UInt32(truncatingIfNeeded: index)
    let inUse = slab.inUse &- 1
    slab.inUse = inUse
    if slab.list != Slab.listCurrent && (inUse == 0 || slab.list == Slab.listFull) { slabFreeSlow(slab, &cache) }
  }

  private func slabFreeSlow(_ slab: Slab, _ cache: inout SlabCache) {
    if slab.list == Slab.listFull {
      unlink(slab, from: &cache.full)
      slab.list = Slab.listPartial
      push(slab, onto: &cache.partial)
    }
    guard slab.inUse == 0 else { return }
    if cache.emptySlabs < SlabCache.keepEmpty {
      cache.emptySlabs += 1
    } else {
      unlink(slab, from: &cache.partial)
      releaseSlab(slab, &cache)
    }
  }

  /// Gives an empty slab (on no list, not current) back to the page allocator.
  func releaseSlab(_ slab: Slab, _ cache: inout SlabCache) {
    let order = cache.slabOrder
    // Only a re-entry on this CPU can refuse; the slab then stays empty in no list.
    let released: Void? = core.withLock(cpu: CPU.current) { core in
      // The header dies under the heap lock too: a CPU deciding a free of one of its
      // objects under the heap lock (a double free racing this release) sees the slab
      // whole, or its pages free, never a slab with a cleared header (`corruptSlab`).
      slab.check = 0
      core.slabBytes -= Page.size << order
      // Cannot throw: `newSlab` allocated this run with this order and owner.
      try? core.frames?.freePages(slab.base, order: order, owner: .slab)
    }
    if released != nil { cache.slabs -= 1 }
  }

  /// Gives back every empty slab of `cache`, the current one included once its magazine
  /// is back on its free list.
  /// - Complexity: O(slabs on the partial list).
  func shrink(_ cache: inout SlabCache) {
    var address = cache.partial
    while address != 0 {
      let slab = Slab(address: address)
      address = slab.next
      if slab.inUse == 0 {
        unlink(slab, from: &cache.partial)
        releaseSlab(slab, &cache)
      }
    }
    cache.emptySlabs = 0
    flushMagazine(&cache)
    if cache.current != 0 {
      let slab = Slab(address: cache.current)
      if slab.inUse == 0 {
        cache.current = 0
        releaseSlab(slab, &cache)
      }
    }
  }

  /// Gives every empty slab of the size classes back to the page allocator (their
  /// hysteresis keeps one each otherwise). `ObjectCache.shrink` does it for one cache.
  /// - Complexity: O(size classes + slabs on partial lists).
  public func releaseEmptySlabs() {
    guard let caches = config.pointee.classCaches else { return }
    let cpu = CPU.current
    for index in 0..<classCacheCount {
      _ = classCache(caches, index).withLock(cpu: cpu) { cache in shrink(&cache) }
    }
  }

  /// Gives back what the heap keeps against thrashing: every empty slab of every cache
  /// (size classes of all CPUs, object caches) and the spare growth arena.
  /// - Complexity: O(caches + slabs on partial lists).
  public func releaseCachedMemory() {
    releaseEmptySlabs()
    let cpu = CPU.current
    _ = cacheList.withLock(cpu: cpu) { list in
      list.forEachSlot { slot in _ = ObjectCacheList.cache(inSlot: slot).withLock(cpu: cpu) { cache in shrink(&cache) } }
    }
    _ = core.withLock(cpu: cpu) { $0.releaseSpare() }
  }

  /// Objects of `cache` handed out now: a walk of its slabs (the fast paths keep no
  /// cache-wide counter).
  /// - Complexity: O(slabs).
  func liveObjects(_ cache: SlabCache) -> Int {
    // The magazine's objects are free to callers, in use to their slab.
    var live = cache.current == 0 ? 0 : Slab(address: cache.current).inUse &- cache.magazineCount
    for list in 0..<2 {
      var address = list == 0 ? cache.partial : cache.full
      while address != 0 {
        let slab = Slab(address: address)
        live += slab.inUse
        address = slab.next
      }
    }
    return live
  }

  // MARK: Lists

  private func push(_ slab: Slab, onto head: inout UInt) {
    slab.previous = 0
    slab.next = head
    if head != 0 { Slab(address: head).previous = slab.address }
    head = slab.address
  }

  private func unlink(_ slab: Slab, from head: inout UInt) {
    if slab.next != 0 { Slab(address: slab.next).previous = slab.previous }
    if slab.previous != 0 { Slab(address: slab.previous).next = slab.next } else { head = slab.next }
    slab.next = 0
    slab.previous = 0
  }

  // MARK: Locking a slab

  /// Runs `body` on the slab object `pointer` with its cache's lock held: its cache's
  /// state, its slab and its index. nil (nothing run, no lock held) when `pointer` is
  /// in no slab of this heap, or when its slab changed between the unlocked look and
  /// the lock: another CPU freed the slab's last object and gave the run back (a
  /// concurrent double free), maybe to a slab of another cache. The caller then decides
  /// under the heap lock, from the page entry.
  /// - Throws: `reentered` when this CPU already holds the cache's lock; a bad pointer
  ///   inside the slab (interior, double free); what `body` throws.
  /// - Complexity: O(log ranges) plus `body`.
  @inline(__always)
  func withSlabLocked<R>(
    holding pointer: UnsafeMutableRawPointer, cpu: Int, _ body: (inout SlabCache, Slab, Int) throws(HeapError) -> R
  ) throws(HeapError) -> R? {
    guard let slab = slabHolding(pointer) else { return nil }
    // The check word `slabHolding` found intact: address ^ cache ^ secret, so while it
    // is unchanged the slab still belongs to that cache (a release clears it, a new slab
    // at this address for another cache has another).
    let check = slab.check
    let outcome = try slab.cache.withLock(cpu: cpu) { (cache) throws(HeapError) -> R? in
      guard slab.check == check else { return nil }
      guard case .slabObject(let slab, let index) = try HeapCore.locateObject(pointer, inCheckedSlab: slab) else { return nil }
      return try body(&cache, slab, index)
    }
    guard let outcome else { throw HeapError(.reentered, UInt(bitPattern: pointer)) }
    return outcome
  }

  /// The slab of this heap whose page run holds `pointer`, with an intact header, or
  /// nil (then it is a block, a large allocation or bad input, all decided under the
  /// heap lock). Read without a lock: a slab's run, cache and check word do not change
  /// while one of its objects is live, and the caller re-checks under the cache lock.
  /// The page's entry says `.slab` and where the run starts; the header's check word,
  /// which mixes in this heap's secret, says it is one of this heap's slabs (the run
  /// head's tag is not read).
  /// - Complexity: O(log ranges): one page-entry lookup.
  @inline(__always)
  func slabHolding(_ pointer: UnsafeMutableRawPointer) -> Slab? {
    guard let slab = slabRun(holding: pointer), slab.hasValidCheck(secret: config.pointee.slabSecret) else { return nil }
    return slab
  }

  /// Where the `.slab` page run holding `pointer` starts, from the page's entry, or nil;
  /// nothing in the run is read. The caller checks the header's check word.
  /// - Complexity: O(log ranges): one page-entry lookup; O(1) in the first RAM range.
  @inline(__always)
  func slabRun(holding pointer: UnsafeMutableRawPointer) -> Slab? {
    let address = UInt(bitPattern: pointer)
    guard address & 15 == 0 else { return nil }
    return slabRun(at: address)
  }

  /// `slabRun(holding:)` for any address, aligned or not (0 included): for a caller
  /// whose own checks refuse an address that is no object's start.
  /// - Complexity: as `slabRun(holding:)`.
  @inline(__always)
  func slabRun(at address: UInt) -> Slab? {
    // The first range's window, copied into the heap's configuration: one load less on
    // the way to the entry than through the frames' layout. Only a heap with frames has
    // a window (0 bytes otherwise).
    let offset = address &- config.pointee.firstWindowStart
    let pagesIn: Int?
    if offset < config.pointee.firstWindowBytes {
      pagesIn = config.pointee.frames.unsafelyUnwrapped.pagesIntoRun(firstRangeOffset: offset, owner: .slab)
    } else {
      // The initial region's pages are not `.slab` pages, or not RAM at all.
      guard let frames = config.pointee.frames, let pointer = UnsafeRawPointer(bitPattern: address) else { return nil }
      pagesIn = frames.pagesIntoRun(at: pointer, owner: .slab)
    }
    guard let pagesIn else { return nil }
    return Slab(address: Page.roundDown(address) &- UInt(bitPattern: pagesIn) << UInt(Page.shift))
  }
}
