import KernelSync
import PageFrames

/// The heap's bookkeeping, kept at the start of its first arena after `HeapPrefix`.
/// Every field that changes after `init` changes under the heap lock; the rest are
/// set by `init` and only read (a struct that two locks guarded would be changed by
/// two CPUs at once).
struct HeapControl {
  var firstLevelBitmap: UInt32 = 0
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
  let zeroFill: ZeroFill
  /// Where growth runs and large allocations come from, and where ownership is looked up.
  let frames: PageFrameAllocator?
  /// This heap's mark in the head entry of its page runs.
  let tag: UInt32
  /// Bytes of the control block: `Heap.controlBytes`, plus the size-class caches when
  /// the heap has page frames.
  let controlSize: Int
  /// The size-class caches (`SlabClass.count` per CPU slot, each `SlabCache.slotBytes`
  /// long, in the control block), or nil when slabs are off (no page frames).
  var classCaches: UnsafeMutableRawPointer? = nil
  /// `SlabClass.granuleTable()`: the size class of a request, by its 16-byte granules.
  let classOfGranule = SlabClass.granuleTable()
  /// Bytes of the slab runs held, and the secret their headers and links are mixed with.
  var slabBytes = 0
  var slabSecret: UInt = 0
  let growthCeiling: Int
  let growthStepOrder: Int
  /// First block and end (one past the sentinel) of the initial arena.
  let initialStart: UInt
  let initialEnd: UInt
}

/// A best-fit-class allocator: TLSF-style segregated free lists with two bitmap levels,
/// boundary tags, split and coalesce, 16-byte aligned payloads and a 16-byte checked
/// header per block, over an initial range plus arenas it grows from page frames.
///
/// With a page-frame allocator (`frames`):
/// - it grows by one page run at a time (the largest free run up to the growth step)
///   until the page allocator cannot supply one or the ceiling is reached;
/// - a growth arena that becomes entirely free goes back to the page allocator, except
///   that one empty arena is kept while the rest of the heap has less than
///   `spareWatermark` bytes free (so an allocation that oscillates at a boundary does
///   not take and return a run each time);
/// - requests above `largeRequestThreshold` are page runs of their own;
/// - ownership of a pointer comes from its page entry: one lookup, no arena scan.
///
/// `Heap` is a handle (its state lives in the arena), so copies share one heap.
///
/// Safe on every CPU at once (`Heap+Locks.swift`): the size classes are per CPU, each
/// cache with its own lock, so a small allocation and its free on the same CPU take
/// one uncontended lock each; a free from another CPU takes the owning cache's lock
/// (the locked remote-free path). TLSF blocks, arenas and large allocations are under
/// the heap lock. Lock order: the object-cache list, then slab caches, then the heap,
/// then the page frames; never the reverse.
public struct Heap {
  let control: UnsafeMutablePointer<HeapControl>
  let secondLevelBitmaps: UnsafeMutablePointer<UInt32>
  let heads: UnsafeMutablePointer<UnsafeMutableRawPointer?>

  /// Requests above this many bytes are served as page runs when the heap has page
  /// frames (the largest block an arena must hold stays small next to a growth step).
  public static let largeRequestThreshold = 128 << 10
  /// An emptied growth arena is kept as a spare only while the rest of the heap has
  /// fewer free bytes than this.
  public static let spareWatermark = 256 << 10
  /// Bytes at the start of each growth run that link the growth arenas.
  static let arenaRecordBytes = 16

  /// Bytes the control block takes at the start of the first range: `HeapPrefix`,
  /// `HeapControl`, the TLSF bitmaps and list heads.
  public static var controlBytes: Int {
    var bytes = HeapPrefix.bytes + roundUp(MemoryLayout<HeapControl>.stride, 16)
    bytes += roundUp(SizeClass.firstLevelCount * 4, 16)
    bytes += SizeClass.classCount * MemoryLayout<UnsafeMutableRawPointer?>.stride
    return bytes
  }

  /// Bytes the size-class caches add to the control block of a heap with page frames.
  /// One cache per size class per CPU slot.
  public static var slabCachesBytes: Int { SlabClass.count * CPU.maximum * SlabCache.slotBytes }

  /// The smallest range `init` accepts without page frames: the control block, one
  /// minimum block, the sentinel. With page frames add `slabCachesBytes`.
  public static var minimumBytes: Int { controlBytes + Block.minimumSize + Block.headerSize }

  /// The largest block request an arena can ever satisfy (larger ones need page frames).
  public static let maximumRequest = SizeClass.maximumBlockSize - Block.headerSize

  /// Sets up a heap over `[start, start + size)`.
  ///
  /// - Parameters:
  ///   - start: 16-byte aligned.
  ///   - size: a multiple of 16, at least `minimumBytes`, at most the largest block plus
  ///     the control block.
  ///   - zeroFill: used by `allocateZeroed`.
  ///   - frames: the page allocator the heap grows from, serves large requests from and
  ///     looks ownership up in (nil: a fixed heap over this range only).
  ///   - growthCeiling: the most bytes the heap may hold in all (control block, arenas,
  ///     slabs and large allocations); nil means all of the frames' RAM.
  ///   - growthStepPages: the largest run one growth step takes (rounded down to a power
  ///     of two, at most 1024 pages = 4 MiB).
  ///   - slabs: serve requests up to `SlabClass.limit` from slab caches (only with
  ///     `frames`; default on).
  ///   - secretSeed: mixed into the secret that slab headers and free-list links carry
  ///     (a boot-time counter, say); the heap's address is mixed in as well.
  /// - Returns: nil if the range is misaligned, too small or too large.
  /// - Complexity: O(number of size classes), about 600 stores.
  public init?(
    start: UnsafeMutableRawPointer, size: Int, zeroFill: ZeroFill,
    frames: PageFrameAllocator? = nil, growthCeiling: Int? = nil, growthStepPages: Int = Page.maxOrderPages,
    slabs: Bool = true, secretSeed: UInt = 0
  ) {
    let withSlabs = slabs && frames != nil
    let controlSize = Heap.controlBytes + (withSlabs ? Heap.slabCachesBytes : 0)
    guard UInt(bitPattern: start) & 15 == 0, size & 15 == 0, size >= controlSize + Block.minimumSize + Block.headerSize,
      size - controlSize <= SizeClass.maximumBlockSize, growthStepPages >= 1
    else { return nil }
    HeapPrefix.initialize(start)
    var cursor = start + HeapPrefix.bytes
    let first = UInt(bitPattern: start) + UInt(controlSize)
    let ramBytes = frames.map { $0.pageCount << Page.shift } ?? 0
    control = cursor.bindMemory(to: HeapControl.self, capacity: 1)
    control.initialize(to: HeapControl(
      zeroFill: zeroFill, frames: frames, tag: UInt32(truncatingIfNeeded: UInt(bitPattern: start) >> 4) | 1,
      controlSize: controlSize,
      growthCeiling: max(growthCeiling ?? ramBytes, size),
      growthStepOrder: min(Page.maxOrder, Int.bitWidth - 1 - growthStepPages.leadingZeroBitCount),
      initialStart: first, initialEnd: UInt(bitPattern: start) + UInt(size)))
    cursor += Heap.roundUp(MemoryLayout<HeapControl>.stride, 16)
    secondLevelBitmaps = cursor.bindMemory(to: UInt32.self, capacity: SizeClass.firstLevelCount)
    secondLevelBitmaps.initialize(repeating: 0, count: SizeClass.firstLevelCount)
    cursor += Heap.roundUp(SizeClass.firstLevelCount * 4, 16)
    heads = cursor.bindMemory(to: UnsafeMutableRawPointer?.self, capacity: SizeClass.classCount)
    heads.initialize(repeating: nil, count: SizeClass.classCount)
    cursor += SizeClass.classCount * MemoryLayout<UnsafeMutableRawPointer?>.stride
    setUpSizeClasses(withSlabs ? cursor : nil, seed: secretSeed)
    control.pointee.claimedBytes = size
    let blockSize = size - controlSize - Block.headerSize
    let block = UnsafeMutableRawPointer(bitPattern: first)!
    Block.write(block, size: blockSize, flags: Block.flagFree, prevSize: 0)
    Block.write(block + blockSize, size: 0, flags: Block.flagSentinel | Block.flagPrevFree, prevSize: blockSize)
    insertFree(block)
  }

  static func roundUp(_ value: Int, _ alignment: Int) -> Int { (value + alignment - 1) & ~(alignment - 1) }

  /// The page allocator this heap grows from, if any.
  public var frames: PageFrameAllocator? { control.pointee.frames }

  // MARK: Allocation

  /// Allocates at least `size` bytes, 16-byte aligned. `size == 0` gets a unique
  /// minimum block (16 usable bytes). With page frames, a request up to `SlabClass.limit`
  /// is an object of its size class's slab cache (the TLSF blocks serve it when no slab
  /// page can be had), and one above `largeRequestThreshold` a page run of its own (page
  /// aligned); the rest are TLSF blocks, and the heap grows from page frames when none fits.
  ///
  /// - Returns: the payload, or nil when the size is negative or impossible, or memory
  ///   is exhausted (the heap is unchanged then).
  /// - Complexity: O(1): two bitmap scans, at most one split; growth adds one page-run
  ///   allocation. A large request costs `PageFrameAllocator.allocContiguous`.
  public func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
    let cpu = CPU.current
    if size <= SlabClass.limit, size >= 0, let caches = control.pointee.classCaches,
      let object = lockedSlabAllocate(
        SlabCache.at(caches, CPU.slot(cpu) &* SlabClass.count &+ Int(control.pointee.classOfGranule[(size &+ 15) &>> 4])), cpu: cpu)
    {
      return object
    }
    return allocateUnderHeapLock(size, cpu: cpu)
  }

  /// `allocate` past the slab caches: a large allocation or a TLSF block, under the
  /// heap lock. Out of line, so the slab fast path keeps a small frame.
  @inline(never)
  private func allocateUnderHeapLock(_ size: Int, cpu: Int) -> UnsafeMutableRawPointer? {
    guard heapLock.lock(cpu: cpu) == nil else { return nil }
    defer { heapLock.unlock(cpu: cpu) }
    if size > Heap.largeRequestThreshold, control.pointee.frames != nil { return allocateLarge(size) }
    return allocateBlock(size)
  }

  /// A TLSF block of `size` bytes under the heap lock (`ObjectCache` keeps its state in one).
  func lockedAllocateBlock(_ size: Int) -> UnsafeMutableRawPointer? {
    let cpu = CPU.current
    guard heapLock.lock(cpu: cpu) == nil else { return nil }
    defer { heapLock.unlock(cpu: cpu) }
    return allocateBlock(size)
  }

  /// A TLSF block of `size` bytes, growing the heap when none fits (never a slab object
  /// or a page run). Holder of the heap lock.
  @inline(__always)
  func allocateBlock(_ size: Int) -> UnsafeMutableRawPointer? {
    guard let need = Heap.blockSize(forRequest: size),
      let block = findFreeBlock(need) ?? (grow(need) ? findFreeBlock(need) : nil)
    else { return nil }
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
    guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= Page.size else { return nil }
    // Page runs are page aligned, which covers every alignment accepted here.
    if alignment <= Block.alignment || size > Heap.largeRequestThreshold && control.pointee.frames != nil {
      return allocate(size)
    }
    let cpu = CPU.current
    guard heapLock.lock(cpu: cpu) == nil else { return nil }
    defer { heapLock.unlock(cpu: cpu) }
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

  /// Frees a payload from this heap: a block is coalesced with free neighbours on both
  /// sides, a large allocation goes back to the page allocator whole. `nil` does nothing.
  ///
  /// - Throws: `HeapError` for a misaligned, foreign or interior pointer, a double
  ///   free, or a corrupted header; the heap is untouched then.
  /// - Complexity: O(1): ownership is one page-entry lookup. Freeing a large allocation
  ///   or giving an arena back costs O(its pages) entry writes.
  public func deallocate(_ pointer: UnsafeMutableRawPointer?) throws(HeapError) {
    guard let pointer else { return }
    let cpu = CPU.current
    if let slab = try lockSlab(holding: pointer, cpu: cpu) {
      // A slab object: under its cache's lock, whichever CPU's cache that is.
      let cache = slab.cache
      defer { cache.lock.release() }
      guard case .slabObject(let slab, let index) = try locateObject(pointer, inCheckedSlab: slab) else { return }
      guard cache.pointee.kind == SlabCache.kindSizeClass else { throw HeapError(.wrongCache, UInt(bitPattern: pointer)) }
      slabFree(slab, index: index)
      return
    }
    try deallocateUnderHeapLock(pointer, cpu: cpu)
  }

  /// `deallocate` of anything but a slab object (a TLSF block, a large allocation, or
  /// bad input), under the heap lock. Out of line, so the slab fast path keeps a small frame.
  @inline(never)
  private func deallocateUnderHeapLock(_ pointer: UnsafeMutableRawPointer, cpu: Int) throws(HeapError) {
    guard heapLock.lock(cpu: cpu) == nil else { throw HeapError(.reentered, UInt(bitPattern: pointer)) }
    defer { heapLock.unlock(cpu: cpu) }
    switch try locate(pointer) {
    case .block(let block): release(block)
    case .large(let run, let pages): releaseLarge(run, pages: pages)
    // A slab that `lockSlab` saw change under it: given back and taken again since the
    // pointer's object was freed, so not ours to free.
    case .slabObject: throw HeapError(.doubleFree, UInt(bitPattern: pointer))
    }
  }

  /// Resizes an allocation, in place when the block or its free right neighbour allows,
  /// otherwise by allocate-copy-free. `nil` acts as `allocate`; size 0 frees and
  /// returns nil.
  ///
  /// - Returns: the (possibly moved) payload, or nil when no memory was found (the old
  ///   allocation is then untouched and still owned by the caller).
  /// - Throws: as `deallocate` for a bad pointer.
  /// - Complexity: O(1) in place; O(size) when it moves.
  public func reallocate(_ pointer: UnsafeMutableRawPointer?, to size: Int) throws(HeapError) -> UnsafeMutableRawPointer? {
    guard let pointer else { return allocate(size) }
    // In place (or freed) under the owning lock; a move allocates, copies and frees
    // with no lock held (the caller owns the old allocation meanwhile).
    let copyBytes: Int
    switch try resizeInPlace(pointer, to: size) {
    case .done(let result): return result
    case .move(let bytes): copyBytes = bytes
    }
    guard let moved = allocate(size) else { return nil }
    moved.copyMemory(from: pointer, byteCount: min(size, copyBytes))
    try deallocate(pointer)
    return moved
  }

  /// What `resizeInPlace` did: finished (the result to return), or nothing yet because
  /// the allocation must move (the bytes it holds).
  enum Resize {
    case done(UnsafeMutableRawPointer?)
    case move(Int)
  }

  /// `reallocate`'s work under the lock that owns `pointer`: size 0 frees, a size that
  /// fits stays (growing into a free right neighbour for a block), else `.move`.
  private func resizeInPlace(_ pointer: UnsafeMutableRawPointer, to size: Int) throws(HeapError) -> Resize {
    let cpu = CPU.current
    if let slab = try lockSlab(holding: pointer, cpu: cpu) {
      let cache = slab.cache
      defer { cache.lock.unlock(cpu: cpu) }
      guard case .slabObject(let slab, let index) = try locateObject(pointer, inCheckedSlab: slab) else { return .done(nil) }
      guard cache.pointee.kind == SlabCache.kindSizeClass else { throw HeapError(.wrongCache, UInt(bitPattern: pointer)) }
      if size == 0 {
        slabFree(slab, index: index)
        return .done(nil)
      }
      let current = cache.pointee.slotSize
      // Stays in place while it fits and uses more than half the object.
      return size <= current && size > current / 2 ? .done(pointer) : .move(current)
    }
    guard heapLock.lock(cpu: cpu) == nil else { throw HeapError(.reentered, UInt(bitPattern: pointer)) }
    defer { heapLock.unlock(cpu: cpu) }
    switch try locate(pointer) {
    case .slabObject:
      throw HeapError(.doubleFree, UInt(bitPattern: pointer))
    case .large(let run, let pages):
      if size == 0 {
        releaseLarge(run, pages: pages)
        return .done(nil)
      }
      let current = pages << Page.shift
      return size <= current && size > Heap.largeRequestThreshold ? .done(pointer) : .move(current)
    case .block(let block):
      if size == 0 {
        release(block)
        return .done(nil)
      }
      let current = Block.size(block)
      if let need = Heap.blockSize(forRequest: size), size <= Heap.largeRequestThreshold || control.pointee.frames == nil {
        if need <= current {
          shrink(block, to: need)
          return .done(pointer)
        }
        let next = Block.next(block)
        if Block.isFree(next) && current + Block.size(next) >= need {
          removeFree(next)
          let merged = current + Block.size(next)
          control.pointee.usedBytes &+= merged - current
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

  /// Usable bytes of an allocation (at least what was asked for).
  /// - Throws: as `deallocate` for a pointer that is not a live allocation.
  /// - Complexity: O(1).
  public func usableSize(_ pointer: UnsafeMutableRawPointer) throws(HeapError) -> Int {
    let cpu = CPU.current
    if let slab = try lockSlab(holding: pointer, cpu: cpu) {
      let cache = slab.cache
      defer { cache.lock.unlock(cpu: cpu) }
      _ = try locateObject(pointer, inCheckedSlab: slab)
      guard cache.pointee.kind == SlabCache.kindSizeClass else { throw HeapError(.wrongCache, UInt(bitPattern: pointer)) }
      return cache.pointee.slotSize
    }
    guard heapLock.lock(cpu: cpu) == nil else { throw HeapError(.reentered, UInt(bitPattern: pointer)) }
    defer { heapLock.unlock(cpu: cpu) }
    switch try locate(pointer) {
    case .block(let block): return Block.size(block) - Block.headerSize
    case .large(_, let pages): return pages << Page.shift
    case .slabObject: throw HeapError(.doubleFree, UInt(bitPattern: pointer))
    }
  }

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
    let initialStart = control.pointee.initialStart
    if address >= initialStart &+ UInt(Block.headerSize) && address < control.pointee.initialEnd {
      return .block(try validate(pointer, arenaStart: initialStart, arenaEnd: control.pointee.initialEnd))
    }
    return try locateInPageFrames(pointer)
  }

  /// Ownership from the page entry of `pointer`: a growth arena or a large allocation of
  /// this heap (its tag), anything else is not ours.
  @inline(__always)
  func locateInPageFrames(_ pointer: UnsafeMutableRawPointer) throws(HeapError) -> Allocation {
    let address = UInt(bitPattern: pointer)
    guard let frames = control.pointee.frames else { throw HeapError(.outsideHeap, address) }
    let physical = frames.physical(of: pointer)
    guard let found = frames.runEntry(containing: physical), found.head.next == control.pointee.tag else {
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

  // MARK: Blocks

  /// Frees allocated `block`, already validated: counters, coalescing, back on a list,
  /// or back to the page allocator when it empties a growth arena.
  @inline(__always)
  func release(_ block: UnsafeMutableRawPointer) {
    control.pointee.usedBytes &-= Block.size(block) - Block.headerSize
    control.pointee.allocatedBlocks &-= 1
    let merged = coalesce(block)
    // The first block of an arena (no left neighbour) that reaches the sentinel spans it.
    if Block.prevSize(merged) == 0, Block.flags(Block.next(merged)) & Block.flagSentinel != 0,
      UInt(bitPattern: merged) != control.pointee.initialStart
    {
      arenaEmptied(merged)
    } else {
      insertFree(merged)
    }
    if control.pointee.spareArena != 0 { releaseSpareIfRoomElsewhere() }
  }

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
  func coalesce(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
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
  func findFreeBlock(_ need: Int) -> UnsafeMutableRawPointer? {
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
}
