import KernelSync
import PageFrames

// Slab caches: the heap's small-object path. A heap with page frames serves requests up
// to `SlabClass.limit` from one `SlabCache` per size class, and `ObjectCache`s from
// their own. Slab pages come from the page frames as `.slab` runs tagged with the
// heap's id, so `kfree` finds a slab object's slab through its page entry, as it finds
// growth arenas and large allocations.
extension Heap {
  // MARK: Allocation

  /// An object from `cache`: the current slab's free-list head, else the slow path.
  /// The link read from the object is checked before it becomes the new head.
  /// - Complexity: O(1); the slow path adds one page-run allocation at most.
  @inline(__always)
  func slabAllocate(_ cache: UnsafeMutablePointer<SlabCache>) -> UnsafeMutableRawPointer? {
    let current = cache.pointee.current
    if current != 0 {
      let slab = Slab(address: current)
      // The header may have been overrun from the slab below: its check word first,
      // then the head and its index must agree before either is used.
      guard slab.check == Slab.checkWord(current, cache, control.pointee.slabSecret) else { return abandonCurrent(cache) }
      let object = slab.freeHead
      if object != 0 {
        let index = slab.headIndex
        guard index < cache.pointee.capacity, object == cache.pointee.objectAddress(index, in: slab) else {
          return abandonCurrent(cache)
        }
        var next = cache.pointee.encode(UnsafeRawPointer(bitPattern: object)!.load(as: UInt.self), at: object)
        if next != 0 {
          // The link must name another used, free object of this slab.
          if let nextIndex = cache.pointee.objectIndex(next, in: slab), nextIndex < slab.fresh, nextIndex != index,
            !slab.isAllocated(nextIndex)
          {
            slab.headIndex = nextIndex
          } else {
            next = cutFreeList(slab, at: object)
          }
        }
        slab.freeHead = next
        return hand(object, index, slab)
      }
    }
    return slabAllocateSlow(cache)
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
  private func cutFreeList(_ slab: Slab, at object: UInt) -> UInt {
    badInputHandler(HeapError(.freeListCorrupted, object).report("slab_alloc"))
    slab.quarantined = true
    return 0
  }

  /// The current slab's header fails its checks (overwritten, by an overflow out of
  /// the memory below it, say): report it and stop using the slab. It stays out of
  /// every list, so `heapCheck` keeps reporting the damage; allocation goes on from
  /// another slab.
  @inline(never)
  private func abandonCurrent(_ cache: UnsafeMutablePointer<SlabCache>) -> UnsafeMutableRawPointer? {
    badInputHandler(HeapError(.corruptSlab, cache.pointee.current).report("slab_alloc"))
    cache.pointee.current = 0
    return slabAllocateSlow(cache)
  }

  /// The slow path: a never-used object of the current slab, else a slab from the
  /// partial list, else a new slab.
  private func slabAllocateSlow(_ cache: UnsafeMutablePointer<SlabCache>) -> UnsafeMutableRawPointer? {
    if cache.pointee.current != 0 {
      let slab = Slab(address: cache.pointee.current)
      if slab.fresh < cache.pointee.capacity { return takeFresh(slab, cache) }
      // Exhausted: onto the full list.
      cache.pointee.current = 0
      slab.list = Slab.listFull
      push(slab, onto: &cache.pointee.full)
    }
    if cache.pointee.partial != 0 {
      let slab = Slab(address: cache.pointee.partial)
      unlink(slab, from: &cache.pointee.partial)
      if slab.inUse == 0 { cache.pointee.emptySlabs -= 1 }
      slab.list = Slab.listCurrent
      cache.pointee.current = slab.address
      // A slab joins the partial list through a free, so its list is not empty.
      return slabAllocate(cache)
    }
    guard let slab = newSlab(cache) else { return nil }
    cache.pointee.current = slab.address
    return takeFresh(slab, cache)
  }

  /// The next never-used object of `slab`.
  private func takeFresh(_ slab: Slab, _ cache: UnsafeMutablePointer<SlabCache>) -> UnsafeMutableRawPointer {
    let index = slab.fresh
    slab.fresh = index + 1
    return hand(cache.pointee.objectAddress(index, in: slab), index, slab)
  }

  /// A slab of 2^slabOrder pages for `cache`, within the heap's ceiling, or nil.
  private func newSlab(_ cache: UnsafeMutablePointer<SlabCache>) -> Slab? {
    guard let frames = control.pointee.frames else { return nil }
    let bytes = Page.size << cache.pointee.slabOrder
    // The heap lock guards the ceiling and the byte count (holder of the cache lock).
    let cpu = CPU.current
    guard heapLock.lock(cpu: cpu) == nil else { return nil }
    defer { heapLock.unlock(cpu: cpu) }
    guard heldBytes + bytes <= control.pointee.growthCeiling,
      let run = frames.allocPages(order: cache.pointee.slabOrder, owner: .slab, tag: control.pointee.tag, zeroed: false)
    else { return nil }
    let slab = Slab(run)
    slab.initialize(cache: cache, secret: control.pointee.slabSecret)
    control.pointee.slabBytes += bytes
    cache.pointee.slabs += 1
    return slab
  }

  /// Bytes the heap holds from the page frames and its initial range: arenas, the
  /// control block, large allocations and slabs.
  var heldBytes: Int { control.pointee.claimedBytes + control.pointee.largeBytes + control.pointee.slabBytes }

  // MARK: Free

  /// Frees object `index` of `slab` (located and checked): it heads its slab's list.
  /// A full slab moves to the partial list; an empty one beyond the cache's keep goes
  /// back to the page allocator.
  /// - Complexity: O(1); giving a slab back costs O(2^order) page-entry writes.
  @inline(__always)
  func slabFree(_ slab: Slab, index: Int) {
    let cache = slab.cache
    let object = cache.pointee.objectAddress(index, in: slab)
    slab.bitmapWord(index).pointee &= ~Slab.bit(index)
    UnsafeMutableRawPointer(bitPattern: object)!.storeBytes(of: cache.pointee.encode(slab.freeHead, at: object), as: UInt.self)
    slab.freeHead = object
    slab.headIndex = index
    let inUse = slab.inUse &- 1
    slab.inUse = inUse
    if slab.list != Slab.listCurrent && (inUse == 0 || slab.list == Slab.listFull) { slabFreeSlow(slab, cache) }
  }

  private func slabFreeSlow(_ slab: Slab, _ cache: UnsafeMutablePointer<SlabCache>) {
    if slab.list == Slab.listFull {
      unlink(slab, from: &cache.pointee.full)
      slab.list = Slab.listPartial
      push(slab, onto: &cache.pointee.partial)
    }
    guard slab.inUse == 0 else { return }
    if cache.pointee.emptySlabs < SlabCache.keepEmpty {
      cache.pointee.emptySlabs += 1
    } else {
      unlink(slab, from: &cache.pointee.partial)
      releaseSlab(slab, cache)
    }
  }

  /// Gives an empty slab (on no list, not current) back to the page allocator.
  func releaseSlab(_ slab: Slab, _ cache: UnsafeMutablePointer<SlabCache>) {
    let cpu = CPU.current
    // Only a re-entry on this CPU can refuse; the slab then stays empty in no list.
    guard heapLock.lock(cpu: cpu) == nil else { return }
    defer { heapLock.unlock(cpu: cpu) }
    // The header dies under the heap lock too: a CPU deciding a free of one of its
    // objects under the heap lock (a double free racing this release) sees the slab
    // whole, or its pages free, never a slab with a cleared header (`corruptSlab`).
    slab.check = 0
    control.pointee.slabBytes -= Page.size << cache.pointee.slabOrder
    cache.pointee.slabs -= 1
    // Cannot throw: `newSlab` allocated this run with this order and owner.
    try? control.pointee.frames?.freePages(slab.base, order: cache.pointee.slabOrder, owner: .slab)
  }

  /// Gives back every empty slab of `cache`, the current one included.
  /// - Complexity: O(slabs on the partial list).
  func shrink(_ cache: UnsafeMutablePointer<SlabCache>) {
    var address = cache.pointee.partial
    while address != 0 {
      let slab = Slab(address: address)
      address = slab.next
      if slab.inUse == 0 {
        unlink(slab, from: &cache.pointee.partial)
        releaseSlab(slab, cache)
      }
    }
    cache.pointee.emptySlabs = 0
    if cache.pointee.current != 0 {
      let slab = Slab(address: cache.pointee.current)
      if slab.inUse == 0 {
        cache.pointee.current = 0
        releaseSlab(slab, cache)
      }
    }
  }

  /// Gives every empty slab of the size classes back to the page allocator (their
  /// hysteresis keeps one each otherwise). `ObjectCache.shrink` does it for one cache.
  /// - Complexity: O(size classes + slabs on partial lists).
  public func releaseEmptySlabs() {
    guard let caches = control.pointee.classCaches else { return }
    let cpu = CPU.current
    for index in 0..<(SlabClass.count * CPU.maximum) {
      let cache = SlabCache.at(caches, index)
      guard cache.lock.lock(cpu: cpu) == nil else { continue }
      shrink(cache)
      cache.lock.unlock(cpu: cpu)
    }
  }

  /// Objects of `cache` handed out now: a walk of its slabs (the fast paths keep no
  /// cache-wide counter).
  /// - Complexity: O(slabs).
  func liveObjects(_ cache: UnsafeMutablePointer<SlabCache>) -> Int {
    var live = cache.pointee.current == 0 ? 0 : Slab(address: cache.pointee.current).inUse
    for list in 0..<2 {
      var address = list == 0 ? cache.pointee.partial : cache.pointee.full
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

  // MARK: Ownership

  /// The object `pointer` starts in `slab` (a slab run of this heap), after the
  /// header's check, the object-start check and the double-free check.
  @inline(__always)
  func locateSlabObject(_ pointer: UnsafeMutableRawPointer, slab: Slab) throws(HeapError) -> Allocation {
    guard slab.check == Slab.checkWord(slab.address, slab.cache, control.pointee.slabSecret) else {
      throw HeapError(.corruptSlab, UInt(bitPattern: pointer))
    }
    return try locateObject(pointer, inCheckedSlab: slab)
  }

  /// `locateSlabObject` after the header's check (`lockSlab` made it under the lock).
  @inline(__always)
  func locateObject(_ pointer: UnsafeMutableRawPointer, inCheckedSlab slab: Slab) throws(HeapError) -> Allocation {
    let address = UInt(bitPattern: pointer)
    let cache = slab.cache
    guard let index = cache.pointee.objectIndex(address, in: slab) else { throw HeapError(.interiorPointer, address) }
    guard slab.isAllocated(index) else { throw HeapError(.doubleFree, address) }
    return .slabObject(slab, index: index)
  }

  // MARK: Set-up

  /// The secret, and the size-class caches at `block` in the control block (nil: slabs off).
  func setUpSizeClasses(_ block: UnsafeMutableRawPointer?, seed: UInt) {
    control.pointee.slabSecret = SlabCache.mix(UInt(bitPattern: control) ^ seed)
    guard let block else { return }
    for index in 0..<(SlabClass.count * CPU.maximum) {
      let cache = (block + (index * SlabCache.slotBytes + SlabCache.prefixBytes)).bindMemory(to: SlabCache.self, capacity: 1)
      cache.prefix.initializeMemory(as: UInt8.self, repeating: 0, count: SlabCache.prefixBytes)
      cache.initialize(to: SlabCache(
        size: SlabClass.objectSize(index % SlabClass.count), alignment: 16, kind: SlabCache.kindSizeClass,
        address: UInt(bitPattern: cache), heapSecret: control.pointee.slabSecret))
    }
    control.pointee.classCaches = block
  }
}
