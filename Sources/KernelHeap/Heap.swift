import PageFrames

/// Gets 2^order zeroed-or-not contiguous pages for heap growth, or nil.
/// In the kernel it calls the page-frame allocator with owner `.heap`.
public typealias HeapGrowPages = @convention(c) (_ order: Int) -> UnsafeMutableRawPointer?

/// The heap's bookkeeping, kept at the start of its first arena.
struct HeapControl {
  static let maxArenas = 16

  var firstLevelBitmap: UInt32 = 0
  var arenaCount = 0
  /// Bytes of every arena, control block included: what the heap has claimed.
  var claimedBytes = 0
  /// Payload bytes of allocated blocks (block size - header). Free bytes and counts
  /// are not kept: `statistics` derives them, so the fast paths update two counters.
  var usedBytes = 0
  var peakUsedBytes = 0
  var allocatedBlocks = 0
  var growthCeiling = 0
  var growPages: HeapGrowPages?
  var zeroFill: ZeroFill
}

/// A best-fit-class allocator over one or more memory ranges: TLSF-style segregated
/// free lists with two bitmap levels, boundary tags, split and coalesce, 16-byte
/// aligned payloads and a 16-byte checked header per block.
///
/// `Heap` is a handle (its state lives in the arena), so copies share one heap. It is
/// not thread-safe: the kernel calls it with interrupts off or under a lock.
public struct Heap {
  let control: UnsafeMutablePointer<HeapControl>
  let secondLevelBitmaps: UnsafeMutablePointer<UInt32>
  let heads: UnsafeMutablePointer<UnsafeMutableRawPointer?>
  /// (first block, sentinel + 16) of each arena.
  let arenas: UnsafeMutablePointer<(start: UInt, end: UInt)>

  /// Bytes the control block takes at the start of the first arena.
  public static var controlBytes: Int {
    var bytes = roundUp(MemoryLayout<HeapControl>.stride, 16)
    bytes += roundUp(SizeClass.firstLevelCount * 4, 16)
    bytes += SizeClass.classCount * MemoryLayout<UnsafeMutableRawPointer?>.stride
    bytes += HeapControl.maxArenas * MemoryLayout<(start: UInt, end: UInt)>.stride
    return bytes
  }

  /// Arenas a heap can hold: its first range plus growth runs that extend no arena.
  public static var maximumArenas: Int { HeapControl.maxArenas }

  /// The largest request `allocate` can ever satisfy.
  public static let maximumRequest = SizeClass.maximumBlockSize - Block.headerSize

  /// Sets up a heap over `[start, start + size)`.
  ///
  /// - Parameters:
  ///   - start: 16-byte aligned.
  ///   - size: room for the control block, one minimum block and the sentinel.
  ///   - zeroFill: used by `allocateZeroed`.
  ///   - growPages: where to get pages when a request does not fit (nil: never grow).
  ///   - growthCeiling: the most bytes the heap may claim in all, growth included.
  /// - Returns: nil if the range is misaligned, too small or too large.
  /// - Complexity: O(number of size classes), about 400 stores.
  public init?(
    start: UnsafeMutableRawPointer, size: Int, zeroFill: ZeroFill,
    growPages: HeapGrowPages? = nil, growthCeiling: Int = 0
  ) {
    guard UInt(bitPattern: start) & 15 == 0, size & 15 == 0,
      size >= Heap.controlBytes + Block.minimumSize + Block.headerSize,
      size - Heap.controlBytes <= SizeClass.maximumBlockSize
    else { return nil }
    var cursor = start
    control = start.bindMemory(to: HeapControl.self, capacity: 1)
    control.initialize(to: HeapControl(growthCeiling: max(growthCeiling, size), growPages: growPages, zeroFill: zeroFill))
    cursor += Heap.roundUp(MemoryLayout<HeapControl>.stride, 16)
    secondLevelBitmaps = cursor.bindMemory(to: UInt32.self, capacity: SizeClass.firstLevelCount)
    secondLevelBitmaps.initialize(repeating: 0, count: SizeClass.firstLevelCount)
    cursor += Heap.roundUp(SizeClass.firstLevelCount * 4, 16)
    heads = cursor.bindMemory(to: UnsafeMutableRawPointer?.self, capacity: SizeClass.classCount)
    heads.initialize(repeating: nil, count: SizeClass.classCount)
    cursor += SizeClass.classCount * MemoryLayout<UnsafeMutableRawPointer?>.stride
    arenas = cursor.bindMemory(to: (start: UInt, end: UInt).self, capacity: HeapControl.maxArenas)
    cursor += HeapControl.maxArenas * MemoryLayout<(start: UInt, end: UInt)>.stride
    control.pointee.claimedBytes = cursor - start
    addArena(cursor, size: size - (cursor - start))
  }

  static func roundUp(_ value: Int, _ alignment: Int) -> Int { (value + alignment - 1) & ~(alignment - 1) }

  // MARK: Allocation

  /// Allocates at least `size` bytes, 16-byte aligned. `size == 0` gets a unique
  /// minimum block (16 usable bytes). Grows the heap through `growPages` when nothing fits.
  ///
  /// - Returns: the payload, or nil when `size > maximumRequest` or memory is exhausted
  ///   (the heap is unchanged then).
  /// - Complexity: O(1): two bitmap scans, at most one split; growth adds one page-run
  ///   allocation.
  public func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
    guard let need = Heap.blockSize(forRequest: size) else { return nil }
    guard let block = findFreeBlock(need) ?? (grow(need) ? findFreeBlock(need) : nil) else { return nil }
    return Block.payload(take(block, need: need))
  }

  /// The block size serving a request: payload rounded to 16 plus the header, at least
  /// the minimum block. nil when it could never fit. No arithmetic here can wrap.
  @inline(__always)
  static func blockSize(forRequest size: Int) -> Int? {
    guard size >= 0, size <= maximumRequest else { return nil }
    return max((size + 15) & ~15 + Block.headerSize, Block.minimumSize)
  }

  /// Allocates `size` bytes at an address that is a multiple of `alignment`.
  ///
  /// - Parameter alignment: a power of two up to 4096; up to 16 this is `allocate`.
  /// - Returns: nil for a bad alignment, an impossible size, or no memory.
  /// - Complexity: O(1), as `allocate`, plus at most two splits.
  public func allocate(_ size: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= 4096 else { return nil }
    if alignment <= Block.alignment { return allocate(size) }
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

  /// Allocates `count * size` zeroed bytes; nil if the product overflows.
  /// - Complexity: O(1) plus zeroing.
  public func allocateZeroed(count: Int, size: Int) -> UnsafeMutableRawPointer? {
    let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
    guard !overflow, count >= 0, size >= 0, let payload = allocate(bytes) else { return nil }
    control.pointee.zeroFill(payload, bytes)
    return payload
  }

  /// Frees a payload from this heap, coalescing with free neighbours on both sides.
  /// `nil` does nothing.
  ///
  /// - Throws: `HeapError` for a misaligned, foreign or interior pointer, a double
  ///   free, or a corrupted header; the heap is untouched then.
  /// - Complexity: O(1) (O(arenas) ≤ 16 for the bounds check).
  public func deallocate(_ pointer: UnsafeMutableRawPointer?) throws(HeapError) {
    guard let pointer else { return }
    release(try validate(pointer))
  }

  /// Frees allocated `block`, already validated: counters, coalescing, back on a list.
  @inline(__always)
  private func release(_ block: UnsafeMutableRawPointer) {
    control.pointee.usedBytes &-= Block.size(block) - Block.headerSize
    control.pointee.allocatedBlocks &-= 1
    insertFree(coalesce(block))
  }

  /// Resizes an allocation, in place when the block or its free right neighbour allows,
  /// otherwise by allocate-copy-free. `nil` acts as `allocate`; size 0 frees and
  /// returns nil.
  ///
  /// - Returns: the (possibly moved) payload, or nil when no memory was found (the old
  ///   block is then untouched and still owned by the caller).
  /// - Throws: as `deallocate` for a bad pointer.
  /// - Complexity: O(1) in place; O(size) when it moves.
  public func reallocate(_ pointer: UnsafeMutableRawPointer?, to size: Int) throws(HeapError) -> UnsafeMutableRawPointer? {
    guard let pointer else { return allocate(size) }
    let block = try validate(pointer)
    if size == 0 {
      release(block)
      return nil
    }
    guard let need = Heap.blockSize(forRequest: size) else { return nil }
    let current = Block.size(block)
    if need <= current {
      shrink(block, to: need)
      return pointer
    }
    let next = Block.next(block)
    if Block.isFree(next) && current + Block.size(next) >= need {
      removeFree(next)
      let merged = current + Block.size(next)
      control.pointee.usedBytes &+= merged - current
      Block.setSize(block, merged, flags: Block.flags(block))
      let after = Block.next(block)
      Block.setPrevious(after, size: merged, free: false)
      shrink(block, to: need)
      notePeak()
      return pointer
    }
    guard let moved = allocate(size) else { return nil }
    moved.copyMemory(from: pointer, byteCount: current - Block.headerSize)
    release(block)
    return moved
  }

  /// Usable bytes of an allocation (at least what was asked for).
  /// - Throws: as `deallocate` for a pointer that is not a live allocation.
  /// - Complexity: O(arenas) for the bounds check, O(1) otherwise.
  public func usableSize(_ pointer: UnsafeMutableRawPointer) throws(HeapError) -> Int {
    Block.size(try validate(pointer)) - Block.headerSize
  }

  // MARK: Validation

  /// The header of a payload that may be freed, after every check.
  @inline(__always)
  func validate(_ pointer: UnsafeMutableRawPointer) throws(HeapError) -> UnsafeMutableRawPointer {
    let address = UInt(bitPattern: pointer)
    // Critical: alignment first, then bounds, then the header (never read outside the heap).
    guard address & 15 == 0 else { throw HeapError(.misaligned, address) }
    guard let arena = arenaIndex(containingPayload: address) else { throw HeapError(.outsideHeap, address) }
    let block = Block.header(ofPayload: pointer)
    guard Block.isIntact(block) else { throw HeapError(.corruptHeader, address) }
    let flags = Block.flags(block)
    if flags & Block.flagFree != 0 { throw HeapError(.doubleFree, address) }
    guard flags & Block.flagSentinel == 0 else { throw HeapError(.corruptHeader, address) }
    let size = Block.size(block)
    let arenaEnd = arenas[arena].end
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
      guard prevSize >= Block.minimumSize, UInt(prevSize) <= UInt(bitPattern: block) - arenas[arena].start,
        Block.isIntact(previous), Block.flags(previous) & (Block.flagFree | Block.flagSentinel) == Block.flagFree,
        Block.size(previous) == prevSize
      else { throw HeapError(.corruptNeighbour, address) }
    }
    return block
  }

  @inline(__always)
  func arenaIndex(containingPayload address: UInt) -> Int? {
    var index = 0
    let count = control.pointee.arenaCount
    while index < count {
      let arena = arenas[index]
      if address >= arena.start + UInt(Block.headerSize) && address < arena.end { return index }
      index += 1
    }
    return nil
  }

  // MARK: Blocks

  /// Marks free block `block` (already off the lists) allocated with `need` bytes,
  /// splitting off the tail when it can hold a minimum block.
  @inline(__always)
  private func take(_ block: UnsafeMutableRawPointer, need: Int) -> UnsafeMutableRawPointer {
    let size = Block.size(block)
    let flags = Block.flags(block) & Block.flagPrevFree
    control.pointee.allocatedBlocks &+= 1
    if size - need >= Block.minimumSize {
      insertFree(split(block, size: size, at: need, flags: flags))
      control.pointee.usedBytes &+= need - Block.headerSize
    } else {
      Block.setSize(block, size, flags: flags)
      let after = block + size
      Block.setPrevious(after, size: size, free: false)
      control.pointee.usedBytes &+= size - Block.headerSize
    }
    notePeak()
    return block
  }

  @inline(__always)
  private func notePeak() {
    if control.pointee.usedBytes > control.pointee.peakUsedBytes {
      control.pointee.peakUsedBytes = control.pointee.usedBytes
    }
  }

  /// Cuts `block` (`size` bytes) at `need`: `block` keeps `need` bytes and `flags`, the
  /// rest becomes a free header (not yet on a list) that its right neighbour's boundary
  /// tag now describes. Returns the rest.
  @inline(__always)
  private func split(_ block: UnsafeMutableRawPointer, size: Int, at need: Int, flags: UInt64) -> UnsafeMutableRawPointer {
    Block.setSize(block, need, flags: flags)
    let rest = block + need
    Block.write(rest, size: size - need, flags: Block.flagFree, prevSize: need)
    Block.setPrevious(rest + (size - need), size: size - need, free: true)
    return rest
  }

  /// Cuts allocated `block` down to `need` bytes when the tail can stand alone,
  /// merging the tail with a free right neighbour.
  private func shrink(_ block: UnsafeMutableRawPointer, to need: Int) {
    let size = Block.size(block)
    guard size - need >= Block.minimumSize else { return }
    let tail = split(block, size: size, at: need, flags: Block.flags(block))
    control.pointee.usedBytes &-= size - need
    insertFree(coalesce(tail))
  }

  /// Merges `block` (being freed, not on a list) with free neighbours; returns the merged
  /// block, marked free, with its right neighbour's boundary tag updated. A header
  /// swallowed by the merge keeps its free flag and check value, so freeing its old
  /// payload again reads as a double free.
  @inline(__always)
  private func coalesce(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
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
  private func findFreeBlock(_ need: Int) -> UnsafeMutableRawPointer? {
    var (first, second) = SizeClass.searchIndex(for: need)
    if first < SizeClass.firstLevelCount {
      var secondMap = secondLevelBitmaps[first] & (~0 << UInt32(second))
      if secondMap == 0 {
        let firstMap = first + 1 < 32 ? control.pointee.firstLevelBitmap & (~0 << UInt32(first + 1)) : 0
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
  private func scanOwnClass(_ need: Int) -> UnsafeMutableRawPointer? {
    let (first, second) = SizeClass.index(of: need)
    guard first < SizeClass.firstLevelCount else { return nil }
    var candidate = heads[first * SizeClass.secondLevelCount + second]
    var best: UnsafeMutableRawPointer? = nil
    var steps = 0
    while let block = candidate, steps < SizeClass.fallbackScanLimit {
      let size = Block.size(block)
      if size >= need && (best == nil || size < Block.size(best!)) { best = block }
      candidate = Block.nextFree(block)
      steps += 1
    }
    if let best { removeFree(best) }
    return best
  }

  @inline(__always)
  func insertFree(_ block: UnsafeMutableRawPointer) {
    let (first, second) = SizeClass.index(of: Block.size(block))
    let slot = first * SizeClass.secondLevelCount + second
    let head = heads[slot]
    Block.setNextFree(block, head)
    Block.setPrevFree(block, nil)
    if let head { Block.setPrevFree(head, block) }
    heads[slot] = block
    secondLevelBitmaps[first] |= 1 << UInt32(second)
    control.pointee.firstLevelBitmap |= 1 << UInt32(first)
  }

  /// Takes the head off class (first, second)'s list, which must be non-empty.
  @inline(__always)
  private func popHead(_ first: Int, _ second: Int) -> UnsafeMutableRawPointer {
    let block = heads[first * SizeClass.secondLevelCount + second]!
    let next = Block.nextFree(block)
    if let next { Block.setPrevFree(next, nil) }
    replaceHead(first, second, with: next)
    return block
  }

  /// Makes `next` the head of class (first, second), clearing the bitmap bits when the
  /// list is left empty.
  @inline(__always)
  private func replaceHead(_ first: Int, _ second: Int, with next: UnsafeMutableRawPointer?) {
    heads[first * SizeClass.secondLevelCount + second] = next
    if next == nil {
      secondLevelBitmaps[first] &= ~(1 << UInt32(second))
      if secondLevelBitmaps[first] == 0 {
        control.pointee.firstLevelBitmap &= ~(1 << UInt32(first))
      }
    }
  }

  @inline(__always)
  func removeFree(_ block: UnsafeMutableRawPointer) {
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

  // MARK: Arenas and growth

  /// Adds `[start, start + size)` as one free block plus a sentinel. A range that begins
  /// where an arena ends extends that arena instead, unless the merged arena could hold a
  /// block larger than the size index allows.
  @discardableResult
  func addArena(_ start: UnsafeMutableRawPointer, size: Int) -> Bool {
    let address = UInt(bitPattern: start)
    var index = 0
    while index < control.pointee.arenaCount {
      if arenas[index].end == address,
        Int(arenas[index].end - arenas[index].start) + size <= SizeClass.maximumBlockSize {
        // The old sentinel becomes the header of the new space, merged with a free
        // block before it.
        let sentinel = start - Block.headerSize
        Block.setSize(sentinel, size, flags: Block.flags(sentinel) & Block.flagPrevFree)
        Block.write(start + size - Block.headerSize, size: 0, flags: Block.flagSentinel, prevSize: size)
        arenas[index].end = address + UInt(size)
        control.pointee.claimedBytes += size
        insertFree(coalesce(sentinel))
        return true
      }
      index += 1
    }
    guard control.pointee.arenaCount < HeapControl.maxArenas else { return false }
    let blockSize = size - Block.headerSize
    Block.write(start, size: blockSize, flags: Block.flagFree, prevSize: 0)
    Block.write(start + blockSize, size: 0, flags: Block.flagSentinel | Block.flagPrevFree, prevSize: blockSize)
    arenas[control.pointee.arenaCount] = (address, address + UInt(size))
    control.pointee.arenaCount += 1
    control.pointee.claimedBytes += size
    insertFree(start)
    return true
  }

  /// Claims a page run big enough for a `need`-byte block, within the ceiling. With the
  /// arena table full it does not ask for pages: a run that turned out not to extend an
  /// arena could not be used or given back.
  private func grow(_ need: Int) -> Bool {
    guard let growPages = control.pointee.growPages, control.pointee.arenaCount < HeapControl.maxArenas
    else { return false }
    let bytes = need + 2 * Block.headerSize
    var order = 0
    while (Page.size << order) < bytes { order += 1 }
    guard order <= Page.maxOrder,
      control.pointee.claimedBytes + (Page.size << order) <= control.pointee.growthCeiling,
      let pages = growPages(order)
    else { return false }
    return addArena(pages, size: Page.size << order)
  }
}
