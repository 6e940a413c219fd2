import KernelSync
import PageFrames

extension Heap {
  /// The slab part of `check()`: for every size class and every object cache,
  /// - the cache's check word is intact;
  /// - its current slab, partial list and full list are linked both ways, each slab on
  ///   the list its header names; full slabs have nothing left to hand out;
  /// - every slab heads a `.slab` page run of the cache's order tagged with this heap,
  ///   and its header's check word names the cache;
  /// - in each slab the allocated count equals the bitmap's population (with the
  ///   magazine's objects for the current slab), no bit is set at or past the
  ///   never-used mark, and the free list holds exactly the other used objects (fewer
  ///   when it was cut after a write after free), each once;
  /// - the magazine holds distinct free objects of the current slab, none on its free
  ///   list, each with its own address, bitmap word and bit;
  /// - the cache's slab and live-object counters equal a recount, the empty slabs on
  ///   its partial list equal `emptySlabs`;
  /// - the page array holds no slab run of this heap that no cache lists.
  /// - Complexity: O(slabs × objects per slab + pages).
  func checkSlabs(_ core: HeapCore) -> HeapCheckFailure? {
    guard let frames = config.pointee.frames else { return nil }
    var listedPages = 0
    var failure: HeapCheckFailure? = nil
    let cpu = CPU.current
    forEachCache { handle, isObjectCache in
      guard failure == nil else { return }
      failure = handle.withHeld(cpu: cpu) { cache -> HeapCheckFailure? in
        let kind = isObjectCache ? SlabCache.kindObjectCache : SlabCache.kindSizeClass
        guard cache.address == UInt(bitPattern: handle.address), isObjectCache == (cache.serial != 0),
          cache.check == SlabCache.checkWord(address: cache.address, heapSecret: config.pointee.slabSecret, kind: kind, serial: cache.serial)
        else {
          return HeapCheckFailure(reason: "slab cache check word wrong", address: UInt(bitPattern: handle.address))
        }
        listedPages += cache.slabs << cache.slabOrder
        return checkCache(&cache, frames)
      } ?? HeapCheckFailure(reason: "slab cache lock not held", address: UInt(bitPattern: handle.address))
    }
    if let failure { return failure }
    var slabPages = 0
    for index in 0..<frames.pageCount {
      let entry = frames.entries[index]
      if entry.owner == .slab && entry.isBlockHead && entry.next == config.pointee.tag { slabPages += Int(entry.prev) }
    }
    guard slabPages == listedPages, slabPages << Page.shift == core.slabBytes else {
      return HeapCheckFailure(reason: "slab pages in the page array differ from the caches' slabs", address: UInt(slabPages))
    }
    return nil
  }

  private func checkCache(_ cache: inout SlabCache, _ frames: PageFrameAllocator) -> HeapCheckFailure? {
    var slabs = 0, empty = 0
    let current = cache.current
    let cached = magazineIndices(&cache)
    if current != 0 {
      let slab = Slab(address: current)
      guard isSlabRun(slab, cache, frames) else { return HeapCheckFailure(reason: "slab is not a .slab page run of this heap", address: current) }
      guard slab.list == Slab.listCurrent else { return HeapCheckFailure(reason: "current slab not marked current", address: current) }
      if let failure = checkSlab(slab, cache, frames, cached: cached) { return failure }
      slabs += 1
    }
    if let failure = checkMagazine(&cache, cached) { return failure }
    for pass in 0..<2 {
      let list = pass == 0 ? Slab.listPartial : Slab.listFull
      var address = pass == 0 ? cache.partial : cache.full
      var previous: UInt = 0
      while address != 0 {
        let slab = Slab(address: address)
        // Nothing is read from a linked address before the page array vouches for it.
        guard isSlabRun(slab, cache, frames) else { return HeapCheckFailure(reason: "slab is not a .slab page run of this heap", address: address) }
        guard slabs <= frames.pageCount, slab.previous == previous, slab.list == list, address != current else {
          return HeapCheckFailure(reason: "slab list broken", address: address)
        }
        if let failure = checkSlab(slab, cache, frames) { return failure }
        if list == Slab.listFull {
          guard slab.headIndex == Slab.noObject, slab.fresh == cache.capacity else {
            return HeapCheckFailure(reason: "slab on the full list has free objects", address: address)
          }
        } else {
          guard slab.headIndex != Slab.noObject else { return HeapCheckFailure(reason: "slab on the partial list has no free object", address: address) }
          if slab.inUse == 0 { empty += 1 }
        }
        slabs += 1
        previous = address
        address = slab.next
      }
    }
    guard slabs == cache.slabs, empty == cache.emptySlabs else {
      return HeapCheckFailure(reason: "slab cache counters differ from a recount", address: cache.address)
    }
    return nil
  }

  /// Whether `slab` heads a `.slab` run of this heap of `cache`'s order.
  private func isSlabRun(_ slab: Slab, _ cache: SlabCache, _ frames: PageFrameAllocator) -> Bool {
    guard let run = frames.run(containing: frames.physical(of: slab.base)) else { return false }
    return run.owner == .slab && run.tag == config.pointee.tag && frames.pointer(toPhysical: run.start) == slab.base
      && run.pages == 1 << cache.slabOrder
  }

  /// - Parameter cached: the objects of `slab` in its cache's magazine, as a bitmap (the
  ///   current slab's; none for the others): in use to the slab, their bits clear, not
  ///   on its free list.
  private func checkSlab(
    _ slab: Slab, _ cache: SlabCache, _ frames: PageFrameAllocator, cached: InlineArray<4, UInt64> = .init(repeating: 0)
  ) -> HeapCheckFailure? {
    let address = slab.address
    guard slab.cacheAddress == cache.address, slab.check == address ^ cache.slabCheckBase else {
      return HeapCheckFailure(reason: "slab header check word wrong", address: address)
    }
    let capacity = cache.capacity
    let fresh = slab.fresh
    guard fresh <= capacity, slab.inUse <= fresh else { return HeapCheckFailure(reason: "slab counts out of range", address: address) }
    var bits = 0
    for word in 0..<Slab.maximumObjects / 64 {
      let value = slab.bitmapWord(word * 64).pointee
      // Bits at or past `fresh` must be clear.
      let firstBeyond = fresh - word * 64
      let beyond: UInt64 = firstBeyond <= 0 ? ~0 : firstBeyond >= 64 ? 0 : ~0 << UInt64(firstBeyond)
      guard value & beyond == 0 else { return HeapCheckFailure(reason: "slab bitmap marks a never-used object", address: address) }
      bits += value.nonzeroBitCount + cached[word].nonzeroBitCount
    }
    guard bits == slab.inUse else { return HeapCheckFailure(reason: "slab bitmap differs from its count", address: address) }
    // The free list: distinct used free objects (a second visit would need a freed
    // object twice, which the length bound catches).
    var listed = 0
    var next = SlabCache.link(slab.headIndex)
    while next != Slab.endOfList {
      guard listed < fresh - slab.inUse, next < UInt(fresh), !slab.isAllocated(Int(next)) else {
        return HeapCheckFailure(reason: "slab free list holds a bad entry or loops", address: next < UInt(fresh) ? cache.objectAddress(Int(next), in: slab) : address)
      }
      guard cached[Int(next >> 6)] & Slab.bit(Int(next)) == 0 else {
        return HeapCheckFailure(reason: "slab magazine object is on its free list", address: cache.objectAddress(Int(next), in: slab))
      }
      listed += 1
      let object = cache.objectAddress(Int(next), in: slab)
      next = cache.encode(UnsafeRawPointer(bitPattern: object).unsafelyUnwrapped.load(as: UInt.self), at: object)
    }
    guard listed == fresh - slab.inUse || slab.quarantined else {
      return HeapCheckFailure(reason: "slab free list misses free objects", address: address)
    }
    return nil
  }
}
