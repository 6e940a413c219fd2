import KernelSync
import KernelSyncAtomics
import PageFrames

/// The kernel heap: kmalloc's allocator, safe on every CPU at once. The locked front
/// end of four parts, each in its own file:
/// - size-class routing (here): a request up to `SlabClass.limit` goes to the calling
///   CPU's slab cache of its size class, one above `largeRequestThreshold` to a page
///   run of its own, the rest to the TLSF core;
/// - slabs (`Heap+Slabs.swift`, `SlabCache`), each cache behind its own lock;
/// - the TLSF core (`HeapCore`), with the arenas it grows from page frames and the
///   large allocations, behind the heap lock;
/// - the ownership map: the page entries, where one lookup tells whose a pointer is
///   (`HeapCore+Ownership.swift`).
///
/// With a page-frame allocator (`frames`):
/// - it grows by one page run at a time (the largest free run up to the growth step)
///   until the page allocator cannot supply one or the ceiling is reached;
/// - a growth arena that becomes entirely free goes back to the page allocator, except
///   that one empty arena is kept while the rest of the heap has less than
///   `spareWatermark` bytes free;
/// - ownership of a pointer comes from its page entry: one lookup, no arena scan.
///
/// A small allocation and its free on the same CPU take one uncontended lock each; a
/// free from another CPU takes the owning cache's lock (the locked remote-free path).
/// Lock order, outermost first: the object-cache list, slab caches (more than one only
/// in walks, which hold the list lock first and so never meet), the heap lock, then the page
/// frames' locks. A lock refused because this CPU holds it already (re-entry from an
/// interrupt handler) gives nil or `HeapError.reentered`, never a deadlock.
///
/// `Heap` is a handle (its state lives in its control block), so copies share one heap.
public struct Heap {
  /// The control block's start: `HeapConfig` first.
  let config: UnsafeMutablePointer<HeapConfig>

  /// Requests above this many bytes are served as page runs when the heap has page
  /// frames (the largest block an arena must hold stays small next to a growth step).
  public static let largeRequestThreshold = 128 << 10
  /// An emptied growth arena is kept as a spare only while the rest of the heap has
  /// fewer free bytes than this.
  public static let spareWatermark = 256 << 10
  /// Bytes at the start of each growth run that link the growth arenas.
  static let arenaRecordBytes = 16

  // The control block: the config, the object-cache list and its lock, the heap lock and
  // the TLSF core, the second-level bitmaps, the list heads; then the size-class caches.
  // Each lock starts a 64-byte line of its own.
  static var listOffset: Int { roundUp(MemoryLayout<HeapConfig>.stride, 64) }
  static var coreOffset: Int { listOffset + roundUp(SpinLocked<ObjectCacheList>.byteCount, 64) }
  static var bitmapsOffset: Int { coreOffset + roundUp(SpinLocked<HeapCore>.byteCount, 64) }
  static var headsOffset: Int { bitmapsOffset + roundUp(SizeClass.firstLevelCount * 4, 16) }

  /// Bytes the control block takes at the start of the first range (without the
  /// size-class caches).
  public static var controlBytes: Int {
    roundUp(headsOffset + SizeClass.classCount * MemoryLayout<UnsafeMutableRawPointer?>.stride, 64)
  }

  /// Bytes the size-class caches add to the control block of a heap with page frames
  /// and `slots` CPU slots: one cache per size class per slot.
  /// - Complexity: O(1).
  public static func slabCachesBytes(slots: Int = CPU.slots) -> Int { SlabClass.count * slots * SlabCache.cellBytes }

  /// The smallest range `init` accepts without page frames: the control block, one
  /// minimum block, the sentinel. With page frames add `slabCachesBytes(slots:)`.
  public static var minimumBytes: Int { controlBytes + Block.minimumSize + Block.headerSize }

  /// The largest block request an arena can ever satisfy (larger ones need page frames).
  public static let maximumRequest = SizeClass.maximumBlockSize - Block.headerSize

  /// Sets up a heap over `[start, start + size)`.
  ///
  /// - Parameters:
  ///   - start: 64-byte aligned.
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
  ///   - slots: CPU slots of the size-class caches, a power of two in 1 ...
  ///     `CPU.maximum`; CPU `n` uses slot `n % slots`. The default, `CPU.slots`, gives
  ///     each installed CPU its own.
  ///   - secretSeed: mixed into the secret that slab headers and free-list links carry
  ///     (a boot-time counter, say); the heap's address is mixed in as well.
  /// - Returns: nil if the range is misaligned, too small or too large, `slots` is not
  ///   as described, or the heap tags are used up (2^32 - 2 heaps made in this run).
  /// - Complexity: O(number of size classes), about 600 stores.
  public init?(
    start: UnsafeMutableRawPointer, size: Int, zeroFill: ZeroFill,
    frames: PageFrameAllocator? = nil, growthCeiling: Int? = nil, growthStepPages: Int = Page.maxOrderPages,
    slabs: Bool = true, slots: Int = CPU.slots, secretSeed: UInt = 0
  ) {
    let withSlabs = slabs && frames != nil
    guard slots >= 1, slots <= CPU.maximum, slots & (slots - 1) == 0 else { return nil }
    let controlSize = Heap.controlBytes + (withSlabs ? Heap.slabCachesBytes(slots: slots) : 0)
    guard UInt(bitPattern: start) & 63 == 0, size & 15 == 0, size >= controlSize + Block.minimumSize + Block.headerSize,
      size - controlSize <= SizeClass.maximumBlockSize, growthStepPages >= 1, let tag = HeapTags.next()
    else { return nil }
    let first = UInt(bitPattern: start) + UInt(controlSize)
    let ramBytes = frames.map { $0.pageCount << Page.shift } ?? 0
    let secret = SlabCache.mix(UInt(bitPattern: start) ^ secretSeed)
    let classCaches = withSlabs ? start + Heap.controlBytes : nil
    config = start.bindMemory(to: HeapConfig.self, capacity: 1)
    config.initialize(to: HeapConfig(
      zeroFill: zeroFill, frames: frames, firstWindowStart: frames?.firstRangeWindow.start ?? 0,
      firstWindowBytes: frames?.firstRangeWindow.bytes ?? 0, tag: tag, controlSize: controlSize,
      sizeClassBound: withSlabs ? UInt(SlabClass.limit + 1) : 0, classCaches: classCaches,
      slotMask: slots - 1, slabSecret: secret, growthCeiling: max(growthCeiling ?? ramBytes, size),
      growthStepOrder: min(Page.maxOrder, Int.bitWidth - 1 - growthStepPages.leadingZeroBitCount),
      initialStart: first, initialEnd: UInt(bitPattern: start) + UInt(size)))
    _ = SpinLocked(initializing: start + Heap.listOffset, to: ObjectCacheList())
    let bitmaps = (start + Heap.bitmapsOffset).bindMemory(to: UInt32.self, capacity: SizeClass.firstLevelCount)
    bitmaps.initialize(repeating: 0, count: SizeClass.firstLevelCount)
    let heads = (start + Heap.headsOffset).bindMemory(to: UnsafeMutableRawPointer?.self, capacity: SizeClass.classCount)
    heads.initialize(repeating: nil, count: SizeClass.classCount)
    var core = HeapCore(config: config, secondLevelBitmaps: bitmaps, heads: heads)
    if let classCaches {
      for index in 0..<(SlabClass.count * slots) {
        let cell = classCaches + index * SlabCache.cellBytes
        _ = SpinLocked(initializing: cell, to: SlabCache(
          size: SlabClass.objectSize(index % SlabClass.count), alignment: 16, kind: SlabCache.kindSizeClass,
          address: UInt(bitPattern: cell), heapSecret: secret))
      }
    }
    core.claimedBytes = size
    let blockSize = size - controlSize - Block.headerSize
    let block = UnsafeMutableRawPointer(bitPattern: first)!
    Block.write(block, size: blockSize, flags: Block.flagFree, prevSize: 0)
    Block.write(block + blockSize, size: 0, flags: Block.flagSentinel | Block.flagPrevFree, prevSize: blockSize)
    core.insertFree(block)
    _ = SpinLocked(initializing: start + Heap.coreOffset, to: core)
  }

  static func roundUp(_ value: Int, _ alignment: Int) -> Int { (value + alignment - 1) & ~(alignment - 1) }

  /// The heap lock and the TLSF core behind it.
  @inline(__always)
  var core: SpinLocked<HeapCore> { SpinLocked(at: UnsafeMutableRawPointer(config) + Heap.coreOffset) }

  /// The object-cache list lock and the list.
  var cacheList: SpinLocked<ObjectCacheList> { SpinLocked(at: UnsafeMutableRawPointer(config) + Heap.listOffset) }

  /// CPU slots of the size-class caches: CPU `n` uses slot `n % slots`.
  public var slots: Int { config.pointee.slotMask + 1 }

  /// Size-class caches in all: `SlabClass.count` per CPU slot.
  var classCacheCount: Int { SlabClass.count &* (config.pointee.slotMask &+ 1) }

  /// Size-class cache `index` (`CPU slot × SlabClass.count + class`).
  @inline(__always)
  func classCache(_ caches: UnsafeMutableRawPointer, _ index: Int) -> SpinLocked<SlabCache> {
    SpinLocked(at: caches + index &* SlabCache.cellBytes)
  }

  /// The size-class cache of `cpu` for a request of `size` bytes.
  /// - Precondition: `0 <= size <= SlabClass.limit` (not checked: the table's index).
  @inline(__always)
  func classCache(_ caches: UnsafeMutableRawPointer, size: Int, cpu: Int) -> SpinLocked<SlabCache> {
    let slot = caches + (cpu & config.pointee.slotMask) &* (SlabClass.count &* SlabCache.cellBytes)
    let granule = Int(bitPattern: (UInt(bitPattern: size) &+ 15) &>> 4)
    return SpinLocked(at: slot + Int(unsafe config.pointee.cacheOffsetOfGranule[unchecked: granule]))
  }

  /// The page allocator this heap grows from, if any.
  public var frames: PageFrameAllocator? { config.pointee.frames }

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
    if let object = allocateFast(size) { return object }
    return allocateGenerally(size)
  }

  /// `allocate` past its fast path: every case, the usual one included.
  @inline(never)
  func allocateGenerally(_ size: Int) -> UnsafeMutableRawPointer? {
    let cpu = CPU.current
    if size <= SlabClass.limit, size >= 0, let caches = config.pointee.classCaches,
      let object = classCache(caches, size: size, cpu: cpu)
        .withLock(cpu: cpu, { cache in takeSample(&cache) ? nil : slabAllocate(&cache) }) ?? nil
    {
      return object
    }
    return allocateSlowly(size, cpu: cpu)
  }

  /// What a cache's lock hands back instead of an object when the allocation is the
  /// sampled one (object caches, aligned blocks): never an object's address.
  static let sampleMarker = UnsafeMutableRawPointer(bitPattern: 1).unsafelyUnwrapped

  /// `allocate` when its size-class cache gave nothing: the sampled allocation (the
  /// cache's countdown just restarted; it goes to the pool, outside the cache's lock,
  /// or back to the cache when the pool cannot serve it), or a request for the heap lock.
  @inline(never)
  private func allocateSlowly(_ size: Int, cpu: Int) -> UnsafeMutableRawPointer? {
    if config.pointee.guardedPool != nil, size <= SlabClass.limit, size >= 0, let caches = config.pointee.classCaches {
      let cache = classCache(caches, size: size, cpu: cpu)
      // Read without the lock: a wrong guess only samples one allocation more or less.
      if cache.snapshot.pointee.sampleCountdown == config.pointee.sampleInterval {
        if let object = allocateSampled(size, alignment: Block.alignment, cache: 0) { return object }
        if let object = cache.withLock(cpu: cpu, { cache in slabAllocate(&cache) }) ?? nil { return object }
      }
    }
    return allocateUnderHeapLock(size, cpu: cpu)
  }

  /// `allocate` past the slab caches: a large allocation or a TLSF block, under the
  /// heap lock. Out of line, so the slab fast path keeps a small frame.
  @inline(never)
  private func allocateUnderHeapLock(_ size: Int, cpu: Int) -> UnsafeMutableRawPointer? {
    core.withLock(cpu: cpu) { core in
      if size > Heap.largeRequestThreshold, core.frames != nil { return core.allocateLarge(size) }
      return core.allocateBlock(size)
    } ?? nil
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
  /// - Parameters:
  ///   - size: bytes wanted, as for `allocate(_:)`.
  ///   - alignment: a power of two up to 4096; up to 16 this is `allocate`.
  /// - Returns: nil for a bad alignment, an impossible size, or no memory.
  /// - Complexity: O(1), as `allocate`, plus at most two splits.
  public func allocate(_ size: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= Page.size else { return nil }
    // Page runs are page aligned, which covers every alignment accepted here.
    if alignment <= Block.alignment || size > Heap.largeRequestThreshold && config.pointee.frames != nil {
      return allocate(size)
    }
    let cpu = CPU.current
    let object = core.withLock(cpu: cpu) { core in
      takeSample(&core.sampleCountdown) ? Heap.sampleMarker : core.allocateAlignedBlock(size, alignment: alignment)
    } ?? nil
    guard object == Heap.sampleMarker else { return object }
    return allocateSampled(size, alignment: alignment, cache: 0)
      ?? core.withLock(cpu: cpu) { $0.allocateAlignedBlock(size, alignment: alignment) } ?? nil
  }

  /// Allocates `count * size` zeroed bytes; nil if the product overflows.
  /// - Complexity: O(1) plus zeroing.
  public func allocateZeroed(count: Int, size: Int) -> UnsafeMutableRawPointer? {
    let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
    guard !overflow, count >= 0, size >= 0, let payload = allocate(bytes) else { return nil }
    config.pointee.zeroFill(payload, bytes)
    return payload
  }

  // MARK: Free

  /// Frees a payload from this heap: a block is coalesced with free neighbours on both
  /// sides, a large allocation goes back to the page allocator whole. `nil` does nothing.
  ///
  /// - Throws: `HeapError` for a misaligned, foreign or interior pointer, a double
  ///   free, or a corrupted header; the heap is untouched then.
  /// - Complexity: O(log ranges): ownership is one page-entry lookup. Freeing a large
  ///   allocation or giving an arena back costs O(its pages) entry writes.
  public func deallocate(_ pointer: UnsafeMutableRawPointer?) throws(HeapError) {
    guard let pointer else { return }
    if freeFast(pointer) { return }
    try deallocateGenerally(pointer)
  }

  /// Frees `pointer` as `deallocate` does, and reports a refused free to
  /// `badInputHandler` as "`caller`: reason address" instead of throwing: a kernel's
  /// `kfree`. Its usual case runs without a stack frame (the fast path inline, a tail
  /// call for the rest), which a throwing call would need.
  /// - Parameters:
  ///   - pointer: anything; nil does nothing, bad input is reported and changes nothing.
  ///   - caller: the name the report starts with (one byte to pass, where a
  ///     `StaticString` takes three registers). Another name: `deallocate`, and report
  ///     what it throws.
  /// - Complexity: as `deallocate`.
  public func free(_ pointer: UnsafeMutableRawPointer?, reportingAs caller: FreeCaller) {
    if freeFast(pointer) { return }
    freeGenerally(pointer, reportingAs: caller)
  }

  /// The names `free(_:reportingAs:)` reports under.
  public enum FreeCaller: UInt8, Sendable {
    /// A kernel's `kfree`.
    case kfree
    /// The C library's `free`, which the Swift runtime calls.
    case free

    /// The name as a report starts with it.
    public var name: StaticString {
      switch self {
      case .kfree: return "kfree"
      case .free: return "free"
      }
    }
  }

  /// `free(_:reportingAs:)` past its fast path.
  @inline(never)
  private func freeGenerally(_ pointer: UnsafeMutableRawPointer?, reportingAs caller: FreeCaller) {
    guard let pointer else { return }
    do {
      try deallocateGenerally(pointer)
    } catch {
      badInputHandler(error.report(caller.name))
    }
  }

  /// `deallocate` past its fast path: every case, the usual one included.
  @inline(never)
  func deallocateGenerally(_ pointer: UnsafeMutableRawPointer) throws(HeapError) {
    let cpu = CPU.current
    // A slab object: under its cache's lock, whichever CPU's cache that is.
    let freed: Void? = try withSlabLocked(holding: pointer, cpu: cpu) { (cache, slab, index) throws(HeapError) in
      guard cache.kind == SlabCache.kindSizeClass else { throw HeapError(.wrongCache, UInt(bitPattern: pointer)) }
      slabFree(&cache, slab, index: index)
    }
    if freed != nil { return }
    try deallocateUnderHeapLock(pointer, cpu: cpu)
  }

  /// `deallocate` of anything but a slab object (a TLSF block, a large allocation, or
  /// bad input), under the heap lock. Out of line, so the slab fast path keeps a small frame.
  @inline(never)
  private func deallocateUnderHeapLock(_ pointer: UnsafeMutableRawPointer, cpu: Int) throws(HeapError) {
    if let pool = config.pointee.guardedPool, pool.free(pointer, cache: 0) { return }
    let done: Void? = try core.withLock(cpu: cpu) { (core) throws(HeapError) in
      switch try core.locate(pointer) {
      case .block(let block): core.release(block)
      case .large(let run, let pages): core.releaseLarge(run, pages: pages)
      // A slab that `withSlabLocked` saw change under it: given back and taken again
      // since the pointer's object was freed, so not ours to free.
      case .slabObject: throw HeapError(.doubleFree, UInt(bitPattern: pointer))
      }
    }
    if done == nil { throw HeapError(.reentered, UInt(bitPattern: pointer)) }
  }

  // MARK: Resize

  /// Resizes an allocation, in place when the block or its free right neighbour allows,
  /// otherwise by allocate-copy-free. `nil` acts as `allocate`; size 0 frees and
  /// returns nil.
  ///
  /// - Returns: the (possibly moved) payload, or nil when no memory was found (the old
  ///   allocation is then untouched and still owned by the caller).
  /// - Throws: as `deallocate` for a bad pointer.
  /// - Complexity: O(log ranges) in place (the owner lookup); O(size) when it moves.
  public func reallocate(_ pointer: UnsafeMutableRawPointer?, to size: Int) throws(HeapError) -> UnsafeMutableRawPointer? {
    guard let pointer else { return allocate(size) }
    if let pool = pool(holding: pointer) { return reallocate(pooled: pointer, in: pool, to: size) }
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

  /// `reallocate`'s work under the lock that owns `pointer`.
  private func resizeInPlace(_ pointer: UnsafeMutableRawPointer, to size: Int) throws(HeapError) -> Resize {
    let cpu = CPU.current
    let inSlab = try withSlabLocked(holding: pointer, cpu: cpu) { (cache, slab, index) throws(HeapError) -> Resize in
      guard cache.kind == SlabCache.kindSizeClass else { throw HeapError(.wrongCache, UInt(bitPattern: pointer)) }
      if size == 0 {
        slabFree(&cache, slab, index: index)
        return .done(nil)
      }
      let current = cache.slotSize
      // Stays in place while it fits and uses more than half the object.
      return size <= current && size > current / 2 ? .done(pointer) : .move(current)
    }
    if let inSlab { return inSlab }
    guard let resized = try core.withLock(cpu: cpu, { (core) throws(HeapError) in try core.resizeInPlace(pointer, to: size) })
    else { throw HeapError(.reentered, UInt(bitPattern: pointer)) }
    return resized
  }

  /// Usable bytes of an allocation (at least what was asked for).
  /// - Throws: as `deallocate` for a pointer that is not a live allocation.
  /// - Complexity: O(log ranges).
  public func usableSize(_ pointer: UnsafeMutableRawPointer) throws(HeapError) -> Int {
    if let pool = pool(holding: pointer) {
      guard let size = pool.size(of: pointer) else { throw HeapError(.doubleFree, UInt(bitPattern: pointer)) }
      return size
    }
    let cpu = CPU.current
    let inSlab = try withSlabLocked(holding: pointer, cpu: cpu) { (cache, _, _) throws(HeapError) -> Int in
      guard cache.kind == SlabCache.kindSizeClass else { throw HeapError(.wrongCache, UInt(bitPattern: pointer)) }
      return cache.slotSize
    }
    if let inSlab { return inSlab }
    let bytes = try core.withLock(cpu: cpu) { (core) throws(HeapError) -> Int in
      switch try core.locate(pointer) {
      case .block(let block): return Block.size(block) - Block.headerSize
      case .large(_, let pages): return pages << Page.shift
      case .slabObject: throw HeapError(.doubleFree, UInt(bitPattern: pointer))
      }
    }
    guard let bytes else { throw HeapError(.reentered, UInt(bitPattern: pointer)) }
    return bytes
  }
}

/// The heaps' tags: each heap gets the next number, so no two heaps of one run share a
/// tag, however their control blocks are placed (a tag from the address would alias
/// across 64 GiB and could equal the free-list sentinel).
enum HeapTags {
  /// The next tag, 1 ... 2^32 - 2; nil once they are used up.
  /// - Complexity: O(1) (a compare-and-swap loop while other CPUs make heaps).
  static func next() -> UInt32? {
    let word = ks_heap_tag_word()
    while true {
      let last = ks_load_relaxed(word)
      guard last &+ 1 < PageEntry.none else { return nil }
      if ks_compare_exchange(word, last, last &+ 1) { return last &+ 1 }
    }
  }
}
