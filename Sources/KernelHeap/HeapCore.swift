import KernelSync
import PageFrames

/// What a heap fixes at set-up, read by every CPU without a lock: the first bytes of
/// the control block.
struct HeapConfig {
  let zeroFill: ZeroFill
  /// Where growth runs and large allocations come from, and where ownership is looked up.
  let frames: PageFrameAllocator?
  /// `frames`' first-range window, copied (0 and 0 without frames): kfree's lookup
  /// compares a pointer with it without loading the frames' layout first.
  let firstWindowStart: UInt
  let firstWindowBytes: UInt
  /// This heap's mark in the head entry of its page runs: a number no other heap of this
  /// run has (`HeapTags`).
  let tag: UInt32
  /// Bytes of the control block: `Heap.controlBytes`, plus the size-class caches when
  /// the heap has page frames.
  let controlSize: Int
  /// `SlabClass.limit + 1` with size-class caches, 0 without: requests below it go to
  /// a size class (one compare on kmalloc's fast path, which then needs no test of
  /// `classCaches`).
  let sizeClassBound: UInt
  /// The size-class caches (`SlabClass.count` per CPU slot, `SlabCache.cellBytes` each,
  /// in the control block), or nil when slabs are off (no page frames).
  let classCaches: UnsafeMutableRawPointer?
  /// CPU slots of the size-class caches, minus one: CPU `n` uses slot `n & slotMask`.
  let slotMask: Int
  /// The size class of a request by its 16-byte granules, as the byte offset of the
  /// class's cache in a CPU slot (class × `SlabCache.cellBytes`): one load and one add
  /// on kmalloc's fast path. `Heap.sizeClass(ofGranuleIn:)` divides it back.
  let cacheOffsetOfGranule = SlabClass.granuleTable(scale: SlabCache.cellBytes)
  /// The secret slab headers and free-list links are mixed with.
  let slabSecret: UInt
  let growthCeiling: Int
  let growthStepOrder: Int
  /// First block and end (one past the sentinel) of the initial arena.
  let initialStart: UInt
  let initialEnd: UInt
  /// The sampling detector's pool, when one is attached (`Heap.attach(_:)`).
  var guardedPool: GuardedPool? = nil
  /// The pool's sampling interval: what each cache's countdown restarts from (`Int.max`
  /// without a pool).
  var sampleInterval = Int.max
}

/// The TLSF allocator at the heart of the heap, single-threaded: segregated free lists
/// with two bitmap levels, boundary tags, split and coalesce, 16-byte aligned payloads
/// and a 16-byte checked header per block, over the initial arena and the growth arenas
/// (`HeapCore+Arenas.swift`), plus the heap's large allocations and byte counters. It is
/// the state behind the heap lock: `Heap` reaches it only through
/// `SpinLocked.withLock`, so every method here runs with that lock held.
struct HeapCore {
  var firstLevelBitmap: UInt32 = 0
  /// Aligned allocations left before the sampling detector takes one (`Heap.attach`).
  var sampleCountdown = Int.max
  /// Bytes of the control block and every arena: what the heap has claimed.
  var claimedBytes = 0
  /// Payload bytes of allocated blocks (block size - header). Free bytes and counts
  /// are not kept: `statistics` derives them, so the fast paths update two counters.
  var usedBytes = 0
  var peakUsedBytes = 0
  var allocatedBlocks = 0
  /// Large allocations (page runs) and their bytes.
  var largeAllocations = 0
  var largeBytes = 0
  /// Arenas: the initial one plus growth runs.
  var arenaCount = 1
  /// The newest growth arena's record (a list through every growth arena), or 0.
  var growthArenas: UInt = 0
  /// An empty growth arena kept against thrashing (its record), or 0.
  var spareArena: UInt = 0
  /// Bytes of the slab runs held.
  var slabBytes = 0
  let config: UnsafePointer<HeapConfig>
  let secondLevelBitmaps: UnsafeMutablePointer<UInt32>
  let heads: UnsafeMutablePointer<UnsafeMutableRawPointer?>

  init(config: UnsafePointer<HeapConfig>, secondLevelBitmaps: UnsafeMutablePointer<UInt32>, heads: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
    self.config = config
    self.secondLevelBitmaps = secondLevelBitmaps
    self.heads = heads
  }

  var frames: PageFrameAllocator? { config.pointee.frames }
  var tag: UInt32 { config.pointee.tag }
  var initialStart: UInt { config.pointee.initialStart }
  var initialEnd: UInt { config.pointee.initialEnd }
  var controlSize: Int { config.pointee.controlSize }
  var growthCeiling: Int { config.pointee.growthCeiling }
  var growthStepOrder: Int { config.pointee.growthStepOrder }
  var slabSecret: UInt { config.pointee.slabSecret }

  /// Bytes the heap holds from the page frames and its initial range: arenas, the
  /// control block, large allocations and slabs.
  var heldBytes: Int { claimedBytes + largeBytes + slabBytes }

  /// A TLSF block of `size` bytes, growing the heap when none fits (never a slab object
  /// or a page run). Holder of the heap lock.
  @inline(__always)
  mutating func allocateBlock(_ size: Int) -> UnsafeMutableRawPointer? {
    guard let need = Heap.blockSize(forRequest: size),
      let block = findFreeBlock(need) ?? (grow(need) ? findFreeBlock(need) : nil)
    else { return nil }
    return Block.payload(take(block, need: need))
  }

  /// A TLSF block of `size` bytes whose payload is a multiple of `alignment` (17...4096,
  /// a power of two): a padded block, the lead split off and kept free.
  /// - Complexity: O(1), as `allocateBlock`, plus at most two splits.
  mutating func allocateAlignedBlock(_ size: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    guard let need = Heap.blockSize(forRequest: size), need <= SizeClass.maximumBlockSize - alignment - Block.minimumSize
    else { return nil }
    // Room to slide the payload up to the boundary and leave a whole free block behind.
    let padded = need + alignment + Block.minimumSize
    guard let block = findFreeBlock(padded) ?? (grow(padded) ? findFreeBlock(padded) : nil) else { return nil }
    var start = block
    let payload = UInt(bitPattern: Block.payload(block))
    let mask = UInt(alignment - 1)
    if payload & mask != 0 {
      var aligned = (payload + mask) & ~mask
      if aligned - payload < UInt(Block.minimumSize) { aligned += UInt(alignment) }
      let lead = Int(aligned - payload)
      let total = Block.size(block)
      let prevSize = Block.prevSize(block)
      start = block + lead
      // The leading piece stays free; its left neighbour is allocated (free blocks never touch).
      Block.write(block, size: lead, flags: Block.flagFree, prevSize: prevSize)
      insertFree(block)
      Block.write(start, size: total - lead, flags: Block.flagFree | Block.flagPrevFree, prevSize: lead)
      let after = Block.next(start)
      Block.setPrevious(after, size: total - lead, free: true)
    }
    return Block.payload(take(start, need: need))
  }

  // MARK: Blocks

  /// Frees allocated `block`, already validated: counters, coalescing, back on a list,
  /// or back to the page allocator when it empties a growth arena.
  @inline(__always)
  mutating func release(_ block: UnsafeMutableRawPointer) {
    usedBytes &-= Block.size(block) - Block.headerSize
    allocatedBlocks &-= 1
    let merged = coalesce(block)
    // The first block of an arena (no left neighbour) that reaches the sentinel spans it.
    if Block.prevSize(merged) == 0, Block.flags(Block.next(merged)) & Block.flagSentinel != 0,
      UInt(bitPattern: merged) != initialStart
    {
      arenaEmptied(merged)
    } else {
      insertFree(merged)
    }
    if spareArena != 0 { releaseSpareIfRoomElsewhere() }
  }

  /// Marks free block `block` (already off the lists) allocated with `need` bytes,
  /// splitting off the tail when it can hold a minimum block.
  @inline(__always)
  private mutating func take(_ block: UnsafeMutableRawPointer, need: Int) -> UnsafeMutableRawPointer {
    let size = Block.size(block)
    let flags = Block.flags(block) & Block.flagPrevFree
    allocatedBlocks &+= 1
    if size - need >= Block.minimumSize {
      insertFree(split(block, size: size, at: need, flags: flags))
      usedBytes &+= need - Block.headerSize
    } else {
      Block.setSize(block, size, flags: flags)
      let after = block + size
      Block.setPrevious(after, size: size, free: false)
      usedBytes &+= size - Block.headerSize
    }
    notePeak()
    return block
  }

  @inline(__always)
  mutating func notePeak() {
    if usedBytes > peakUsedBytes {
      peakUsedBytes = usedBytes
    }
  }

  /// Cuts `block` (`size` bytes) at `need`: `block` keeps `need` bytes and `flags`, the
  /// rest becomes a free header (not yet on a list) that its right neighbour's boundary
  /// tag now describes. Returns the rest.
  @inline(__always)
  private mutating func split(_ block: UnsafeMutableRawPointer, size: Int, at need: Int, flags: UInt64) -> UnsafeMutableRawPointer {
    Block.setSize(block, need, flags: flags)
    let rest = block + need
    Block.write(rest, size: size - need, flags: Block.flagFree, prevSize: need)
    Block.setPrevious(rest + (size - need), size: size - need, free: true)
    return rest
  }

  /// Cuts allocated `block` down to `need` bytes when the tail can stand alone,
  /// merging the tail with a free right neighbour.
  mutating func shrink(_ block: UnsafeMutableRawPointer, to need: Int) {
    let size = Block.size(block)
    guard size - need >= Block.minimumSize else { return }
    let tail = split(block, size: size, at: need, flags: Block.flags(block))
    usedBytes &-= size - need
    insertFree(coalesce(tail))
  }

  /// Merges `block` (being freed, not on a list) with free neighbours; returns the merged
  /// block, marked free, with its right neighbour's boundary tag updated. A header
  /// swallowed by the merge keeps its free flag and check value, so freeing its old
  /// payload again reads as a double free.
  @inline(__always)
  mutating func coalesce(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
    var start = block
    var size = Block.size(block)
    let prevSize = Block.prevSize(block)
    var flags = Block.flags(block)
    let next = block + size
    if Block.isFree(next) {
      removeFree(next)
      size += Block.size(next)
    }
    if flags & Block.flagPrevFree != 0 {
      Block.markSwallowed(block)
      let previous = block - prevSize
      removeFree(previous)
      size += Block.size(previous)
      start = previous
      flags = Block.flags(previous)
    }
    Block.setSize(start, size, flags: (flags & Block.flagPrevFree) | Block.flagFree)
    let after = start + size
    Block.setPrevious(after, size: size, free: true)
    return start
  }

  // MARK: Free lists

  /// The head of the first non-empty class whose blocks all hold `need` bytes, else a
  /// bounded scan of `need`'s own class. The block is taken off its list.
  @inline(__always)
  mutating func findFreeBlock(_ need: Int) -> UnsafeMutableRawPointer? {
    var (first, second) = SizeClass.searchIndex(for: need)
    if first < SizeClass.firstLevelCount {
      var secondMap = secondLevelBitmaps[first] & (~0 << UInt32(second))
      if secondMap == 0 {
        let firstMap = first + 1 < 32 ? firstLevelBitmap & (~0 << UInt32(first + 1)) : 0
        if firstMap != 0 {
          first = firstMap.trailingZeroBitCount
          secondMap = secondLevelBitmaps[first]
        }
      }
      if secondMap != 0 {
        second = secondMap.trailingZeroBitCount
        return popHead(first, second)
      }
    }
    return scanOwnClass(need)
  }

  /// Best of the first `fallbackScanLimit` blocks in `need`'s exact class that fit.
  private mutating func scanOwnClass(_ need: Int) -> UnsafeMutableRawPointer? {
    let (first, second) = SizeClass.index(of: need)
    guard first < SizeClass.firstLevelCount else { return nil }
    var candidate = heads[first * SizeClass.secondLevelCount + second]
    var best: UnsafeMutableRawPointer? = nil
    var bestSize = Int.max
    var steps = 0
    while let block = candidate, steps < SizeClass.fallbackScanLimit {
      let size = Block.size(block)
      if size >= need && size < bestSize {
        best = block
        bestSize = size
      }
      candidate = Block.nextFree(block)
      steps += 1
    }
    if let best { removeFree(best) }
    return best
  }

  @inline(__always)
  mutating func insertFree(_ block: UnsafeMutableRawPointer) {
    let (first, second) = SizeClass.index(of: Block.size(block))
    let slot = first * SizeClass.secondLevelCount + second
    let head = heads[slot]
    Block.setNextFree(block, head)
    Block.setPrevFree(block, nil)
    if let head { Block.setPrevFree(head, block) }
    heads[slot] = block
    secondLevelBitmaps[first] |= 1 << UInt32(second)
    firstLevelBitmap |= 1 << UInt32(first)
  }

  /// Takes the head off class (first, second)'s list, which must be non-empty.
  @inline(__always)
  private mutating func popHead(_ first: Int, _ second: Int) -> UnsafeMutableRawPointer {
    // The bitmap said this list is non-empty.
    let block = heads[first * SizeClass.secondLevelCount + second]!
    let next = Block.nextFree(block)
    if let next { Block.setPrevFree(next, nil) }
    replaceHead(first, second, with: next)
    return block
  }

  /// Makes `next` the head of class (first, second), clearing the bitmap bits when the
  /// list is left empty.
  @inline(__always)
  private mutating func replaceHead(_ first: Int, _ second: Int, with next: UnsafeMutableRawPointer?) {
    heads[first * SizeClass.secondLevelCount + second] = next
    if next == nil {
      secondLevelBitmaps[first] &= ~(1 << UInt32(second))
      if secondLevelBitmaps[first] == 0 {
        firstLevelBitmap &= ~(1 << UInt32(first))
      }
    }
  }

  @inline(__always)
  mutating func removeFree(_ block: UnsafeMutableRawPointer) {
    let next = Block.nextFree(block)
    let prev = Block.prevFree(block)
    if let next { Block.setPrevFree(next, prev) }
    if let prev {
      Block.setNextFree(prev, next)
    } else {
      let (first, second) = SizeClass.index(of: Block.size(block))
      replaceHead(first, second, with: next)
    }
  }
}
