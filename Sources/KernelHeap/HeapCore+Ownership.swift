import KernelSync
import PageFrames

// Ownership: what a pointer handed to the heap is, decided from its page entry (one
// lookup) and its header, under the heap lock.
extension HeapCore {
  // MARK: Ownership and validation

  /// What a pointer handed to the heap turned out to be.
  enum Allocation {
    /// A live block (its header).
    case block(UnsafeMutableRawPointer)
    /// A live large allocation: its first page and its length in pages.
    case large(UnsafeMutableRawPointer, pages: Int)
    /// A live slab object: its slab and index (of a size class or an `ObjectCache`).
    case slabObject(Slab, index: Int)
  }

  /// The allocation `pointer` starts, after every check: alignment, then ownership (the
  /// initial arena by its bounds, everything else by its page entry), then the header.
  @inline(__always)
  func locate(_ pointer: UnsafeMutableRawPointer) throws(HeapError) -> Allocation {
    let address = UInt(bitPattern: pointer)
    // Critical: alignment first, then ownership, then the header (never read outside the heap).
    guard address & 15 == 0 else { throw HeapError(.misaligned, address) }
    let initialStart = initialStart
    if address >= initialStart &+ UInt(Block.headerSize) && address < initialEnd {
      return .block(try validate(pointer, arenaStart: initialStart, arenaEnd: initialEnd))
    }
    return try locateInPageFrames(pointer)
  }

  /// Ownership from the page entry of `pointer`: a growth arena or a large allocation of
  /// this heap (its tag), anything else is not ours.
  @inline(__always)
  func locateInPageFrames(_ pointer: UnsafeMutableRawPointer) throws(HeapError) -> Allocation {
    let address = UInt(bitPattern: pointer)
    guard let frames = frames else { throw HeapError(.outsideHeap, address) }
    let physical = frames.physical(of: pointer)
    guard let found = frames.runEntry(containing: physical), found.head.next == tag else {
      // A pointer into a free page was the heap's before: a large allocation, a slab
      // or a growth arena given back (or a wild pointer into free memory).
      throw HeapError(frames.owner(ofPhysical: physical) == .free ? .doubleFree : .outsideHeap, address)
    }
    // The run is contiguous in the direct map: its start is `pagesIn` pages down.
    let runStart = Page.roundDown(address) &- UInt(bitPattern: found.pagesIn) << UInt(Page.shift)
    switch found.head.ownerRawValue {
    case PageOwner.slab.rawValue:
      return try locateSlabObject(pointer, slab: Slab(address: runStart))
    case PageOwner.heap.rawValue:
      let arena = growthArenaBounds(runStart: runStart, pages: Int(found.head.prev))
      guard address >= arena.start + UInt(Block.headerSize) else { throw HeapError(.outsideHeap, address) }
      return .block(try validate(pointer, arenaStart: arena.start, arenaEnd: arena.end))
    case PageOwner.heapLarge.rawValue:
      guard runStart == address else { throw HeapError(.interiorPointer, address) }
      return .large(pointer, pages: Int(found.head.prev))
    default:
      throw HeapError(.outsideHeap, address)
    }
  }

  /// The header of a payload inside arena `[arenaStart, arenaEnd)` that may be freed,
  /// after every check of the header and its neighbours.
  @inline(__always)
  func validate(_ pointer: UnsafeMutableRawPointer, arenaStart: UInt, arenaEnd: UInt) throws(HeapError) -> UnsafeMutableRawPointer {
    let address = UInt(bitPattern: pointer)
    let block = Block.header(ofPayload: pointer)
    guard Block.isIntact(block) else { throw HeapError(.corruptHeader, address) }
    let flags = Block.flags(block)
    if flags & Block.flagFree != 0 { throw HeapError(.doubleFree, address) }
    guard flags & Block.flagSentinel == 0 else { throw HeapError(.corruptHeader, address) }
    let size = Block.size(block)
    // Critical: the size must keep the right neighbour inside the arena, and agree with it.
    guard size >= Block.minimumSize, size & 15 == 0, UInt(size) <= arenaEnd - UInt(Block.headerSize) - UInt(bitPattern: block) else {
      throw HeapError(.corruptNeighbour, address)
    }
    let next = block + size
    guard Block.isIntact(next), Block.prevSize(next) == size,
      (Block.flags(next) & Block.flagPrevFree) == 0
    else { throw HeapError(.corruptNeighbour, address) }
    // A free left neighbour is about to be merged: its header must be whole, free, inside
    // the arena and as big as this block's boundary tag says.
    if flags & Block.flagPrevFree != 0 {
      let prevSize = Block.prevSize(block)
      let previous = block - prevSize
      guard prevSize >= Block.minimumSize, UInt(prevSize) <= UInt(bitPattern: block) - arenaStart,
        Block.isIntact(previous), Block.flags(previous) & (Block.flagFree | Block.flagSentinel) == Block.flagFree,
        Block.size(previous) == prevSize
      else { throw HeapError(.corruptNeighbour, address) }
    }
    return block
  }

  /// `Heap.reallocate`'s work for a pointer that is no slab object, under the heap lock:
  /// size 0 frees, a size that fits stays (growing into a free right neighbour for a
  /// block), else `.move`.
  /// - Complexity: O(1).
  mutating func resizeInPlace(_ pointer: UnsafeMutableRawPointer, to size: Int) throws(HeapError) -> Heap.Resize {
    switch try locate(pointer) {
    case .slabObject:
      throw HeapError(.doubleFree, UInt(bitPattern: pointer))
    case .large(let run, let pages):
      if size == 0 {
        releaseLarge(run, pages: pages)
        return .done(nil)
      }
      let current = pages << Page.shift
      guard size <= current && size > Heap.largeRequestThreshold else { return .move(current) }
      shrinkLarge(run, pages: pages, to: Page.count(forBytes: size))
      return .done(pointer)
    case .block(let block):
      if size == 0 {
        release(block)
        return .done(nil)
      }
      let current = Block.size(block)
      if let need = Heap.blockSize(forRequest: size), size <= Heap.largeRequestThreshold || frames == nil {
        if need <= current {
          shrink(block, to: need)
          return .done(pointer)
        }
        let next = Block.next(block)
        if Block.isFree(next) && current + Block.size(next) >= need {
          removeFree(next)
          let merged = current + Block.size(next)
          usedBytes &+= merged - current
          Block.setSize(block, merged, flags: Block.flags(block))
          Block.setPrevious(Block.next(block), size: merged, free: false)
          shrink(block, to: need)
          notePeak()
          return .done(pointer)
        }
      }
      return .move(current - Block.headerSize)
    }
  }
}

extension HeapCore {
  /// The object `pointer` starts in `slab` (a slab run of this heap), after the
  /// header's check, the object-start check and the double-free check.
  @inline(__always)
  func locateSlabObject(_ pointer: UnsafeMutableRawPointer, slab: Slab) throws(HeapError) -> Allocation {
    guard slab.hasValidCheck(secret: slabSecret) else {
      throw HeapError(.corruptSlab, UInt(bitPattern: pointer))
    }
    return try HeapCore.locateObject(pointer, inCheckedSlab: slab)
  }

  /// `locateSlabObject` after the header's check. Reads only the cache's geometry,
  /// which never changes after the cache is made, so it needs no cache lock.
  @inline(__always)
  static func locateObject(_ pointer: UnsafeMutableRawPointer, inCheckedSlab slab: Slab) throws(HeapError) -> Allocation {
    let address = UInt(bitPattern: pointer)
    // Field by field: a method call on `pointee` would copy the whole state.
    let geometry = slab.cache.snapshot
    guard let index = SlabCache.objectIndex(
      address, in: slab, firstOffset: geometry.pointee.firstOffset, objectsBytes: geometry.pointee.objectsBytes,
      reciprocal: geometry.pointee.reciprocal)
    else { throw HeapError(.interiorPointer, address) }
    guard slab.isAllocated(index) else { throw HeapError(.doubleFree, address) }
    return .slabObject(slab, index: index)
  }
}
