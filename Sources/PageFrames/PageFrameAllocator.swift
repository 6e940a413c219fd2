import KernelSync

/// A buddy allocator over page metadata, safe on every CPU at once: one `PageEntry` per
/// 4 KiB page of each RAM range it manages (up to 64 ranges; the holes between them
/// cost nothing). Runs of 2^order pages (order 0...10) are naturally aligned and never
/// straddle two ranges; runs of any length come from `allocContiguous`.
///
/// The locked front end of three parts, each in its own file:
/// - `BuddyCore`, the single-threaded buddy lists, behind the global lock;
/// - `CPUPageCache`, one per CPU slot behind its own lock: order-0 pages come from and
///   go to the calling CPU's cache (up to 32 pages, refilled and drained 16 at a time),
///   so the common page alloc/free pair takes only that CPU's uncontended lock;
/// - the page entries, the source of truth for who owns a page, changed by the holder
///   of the lock over the page's list, and taken from their owner by compare-and-swap
///   (`claimRun`), so two CPUs freeing one run never both succeed.
/// Lock order: a CPU's cache, then the global lock. Any CPU may free any page. Counts,
/// `checkInvariants` and `drainHotPages` account for every CPU's cache.
///
/// A handle: the state lives in the metadata region it was created over, so a copy is
/// the same allocator, never a fork. Memory is reached through a direct map: the page at
/// physical address `p` is at pointer `p + directMapOffset` (0 in the kernel; host tests
/// point it at a buffer standing in for RAM).
///
/// Set-up is three steps: `init` (all pages unclaimed), `reserve` for what is in use,
/// `release` for what is free. After that, every page has exactly one owner and
/// `Σ count(owner) == pageCount`.
public struct PageFrameAllocator {
  @usableFromInline let layout: UnsafeMutablePointer<FrameLayout>
  /// The metadata array, `pageCount` entries: the ranges' pages one after another.
  public let entries: UnsafeMutablePointer<PageEntry>

  /// Bytes of the layout in front of the per-CPU records: a multiple of a record, so
  /// that every record starts on a 128-byte boundary of the page-aligned metadata.
  static var layoutBytes: Int {
    (MemoryLayout<FrameLayout>.stride + CPUPageCache.stride - 1) / CPUPageCache.stride * CPUPageCache.stride
  }
  /// Bytes of the global lock and the buddy core, then its share of the counts.
  static var buddyBytes: Int { (SpinLocked<BuddyCore>.byteCount + 63) & ~63 + PageCounts.bytes }
  /// Bytes of the layout, `slots` per-CPU records and the buddy core in front of the
  /// entries.
  static func stateBytes(slots: Int) -> Int { layoutBytes + slots * CPUPageCache.stride + buddyBytes }

  /// Most pages one CPU's hot cache holds; a free beyond it hands a batch back.
  public static let hotLimit = CPUPageCache.high
  /// Most pages one allocator manages: page indices are 32 bits, with one value for "none".
  public static let maximumPages = Int(PageEntry.none) - 1

  /// Bytes of metadata needed for `pageCount` pages and `slots` per-CPU page caches:
  /// the state plus 16 per page.
  /// - Precondition: `0 <= pageCount <= maximumPages`; `slots` as `init` takes it.
  /// - Complexity: O(1).
  public static func metadataBytes(pageCount: Int, slots: Int = CPU.slots) -> Int {
    stateBytes(slots: slots) + pageCount * MemoryLayout<PageEntry>.stride
  }

  /// Lays the allocator's state and the metadata array for one RAM range
  /// `[base, base + pageCount * 4096)` at `metadata` and zeroes the array.
  ///
  /// - Parameters:
  ///   - base: physical address of the first page; must be page aligned.
  ///   - pageCount: pages to manage, 1...`maximumPages`.
  ///   - metadata: room for `metadataBytes(pageCount:)` bytes, 64-byte aligned.
  ///   - directMapOffset: pointer = physical + offset.
  ///   - zeroFill: used for the array and for zeroed pages.
  ///   - slots: per-CPU page caches, as `init(ranges:...)` takes them.
  /// - Precondition: the parameters are as described, `directMapOffset` page aligned
  ///   (`init(ranges:...)` checks instead).
  /// - Complexity: O(pageCount), one bzero of the array.
  public init(
    base: UInt, pageCount: Int, metadata: UnsafeMutableRawPointer,
    directMapOffset: Int, zeroFill: ZeroFill, slots: Int = CPU.slots
  ) {
    var ranges = PhysicalRanges()
    ranges.append(PhysicalRange(start: base, end: base &+ UInt(max(pageCount, 0)) << UInt(Page.shift)))
    guard let made = PageFrameAllocator(
      ranges: ranges, metadata: metadata, directMapOffset: directMapOffset, zeroFill: zeroFill, slots: slots)
    else { preconditionFailure("base must be page aligned and pageCount in 1...maximumPages") }
    self = made
  }

  /// Lays the state and one metadata array covering every range of `ranges` at
  /// `metadata`, and zeroes it. No page is free yet. Creating a second allocator over
  /// the same metadata starts it afresh.
  ///
  /// - Parameters:
  ///   - ranges: RAM ranges, page aligned, non-empty, sorted by address, not
  ///     overlapping, none ending at or past 2^64; at most `maximumPages` pages in all.
  ///   - metadata: room for `metadataBytes(pageCount: ranges.totalPages, slots: slots)`
  ///     bytes, 64-byte aligned.
  ///   - directMapOffset: pointer = physical + offset; a multiple of the page size (else
  ///     a page's pointer would not be page aligned and frees would be refused).
  ///   - zeroFill: used for the array and for zeroed pages.
  ///   - slots: per-CPU page caches, a power of two in 1 ... `CPU.maximum`; CPU `n` uses
  ///     cache `n % slots`. The default, `CPU.slots`, gives each installed CPU its own.
  /// - Returns: nil when `ranges` or `slots` is not as described or `directMapOffset` is
  ///   not page aligned (nothing is written then). memInit refuses such an offset first,
  ///   as `MemInitError.directMapMisaligned`.
  /// - Complexity: O(total pages), one bzero of the array.
  public init?(
    ranges: PhysicalRanges, metadata: UnsafeMutableRawPointer, directMapOffset: Int, zeroFill: ZeroFill,
    slots: Int = CPU.slots
  ) {
    self.init(
      ranges: ranges, metadata: metadata, directMapOffset: directMapOffset, zeroFill: zeroFill, slots: slots,
      metadataIsZero: false)
  }

  /// `init(ranges:...)` over metadata the caller knows to be all zero (fresh anonymous
  /// memory): the array is not written, so its pages are touched only as entries are
  /// used. For user-space hosts of the allocator (the malloc preload library).
  /// - Complexity: O(ranges).
  package init?(
    ranges: PhysicalRanges, metadata: UnsafeMutableRawPointer, directMapOffset: Int, zeroFill: ZeroFill,
    slots: Int = CPU.slots, metadataIsZero: Bool
  ) {
    guard MemoryLayout<PageEntry>.size == 16, ranges.count >= 1, slots >= 1, slots <= CPU.maximum,
      slots & (slots - 1) == 0, Page.isAligned(UInt(bitPattern: directMapOffset))
    else { return nil }
    var total = 0
    var previousEnd: UInt = 0
    for index in 0..<ranges.count {
      let range = ranges[index]
      guard Page.isAligned(range.start), Page.isAligned(range.end), range.end > range.start,
        index == 0 || range.start >= previousEnd
      else { return nil }
      total += range.pages
      guard total <= PageFrameAllocator.maximumPages else { return nil }
      previousEnd = range.end
    }
    if !metadataIsZero { zeroFill(metadata, PageFrameAllocator.metadataBytes(pageCount: total, slots: slots)) }
    layout = metadata.bindMemory(to: FrameLayout.self, capacity: 1)
    layout.initialize(to: FrameLayout(pageCount: total, directMapOffset: directMapOffset, zeroFill: zeroFill, slotCount: slots))
    var firstIndex = 0
    for index in 0..<ranges.count {
      let range = ranges[index]
      layout.pointee.ranges[index] = FrameRange(
        base: range.start, end: range.end, firstIndex: firstIndex, pages: range.pages,
        baseFrame: Int(range.start >> UInt(Page.shift)))
      firstIndex += range.pages
    }
    layout.pointee.rangeCount = ranges.count
    if ranges.count > 0 {
      let first = ranges[0]
      layout.pointee.firstWindowStart = UInt(bitPattern: Int(bitPattern: first.start) &+ directMapOffset)
      layout.pointee.firstWindowBytes = first.end - first.start
    }
    entries = (metadata + PageFrameAllocator.stateBytes(slots: slots)).bindMemory(to: PageEntry.self, capacity: total)
    for slot in 0..<slots {
      let record = metadata + PageFrameAllocator.layoutBytes + slot * CPUPageCache.stride
      let counts = PageCounts(zeroing: record + CPUPageCache.countsOffset)
      _ = SpinLocked(initializing: record, to: CPUPageCache(counts: counts))
    }
    let buddy = PageFrameAllocator.buddyAddress(metadata, slots: slots)
    let counts = PageCounts(zeroing: buddy + PageFrameAllocator.buddyCountsOffset)
    _ = SpinLocked(initializing: buddy, to: BuddyCore(entries: entries, layout: layout, counts: counts))
  }

  /// Where the buddy core's share of the counts lives, from the global lock.
  static var buddyCountsOffset: Int { (SpinLocked<BuddyCore>.byteCount + 63) & ~63 }

  /// The share of the counts of CPU slot `slot` (`slots`: the buddy core's).
  func counts(_ slot: Int) -> PageCounts {
    let base = UnsafeMutableRawPointer(layout)
    if slot == slots { return PageCounts(at: PageFrameAllocator.buddyAddress(base, slots: slots) + PageFrameAllocator.buddyCountsOffset) }
    return PageCounts(at: base + PageFrameAllocator.layoutBytes + slot * CPUPageCache.stride + CPUPageCache.countsOffset)
  }

  private static func buddyAddress(_ metadata: UnsafeMutableRawPointer, slots: Int) -> UnsafeMutableRawPointer {
    metadata + layoutBytes + slots * CPUPageCache.stride
  }

  /// Per-CPU page caches this allocator has: CPU `n` uses cache `n % slots`.
  public var slots: Int { layout.pointee.slotCount }

  /// The calling CPU `cpu`'s page cache.
  @inline(__always)
  func cpuCache(ofCPU cpu: Int) -> SpinLocked<CPUPageCache> { cpuCache(cpu & (layout.pointee.slotCount &- 1)) }

  // MARK: Locks

  /// CPU slot `slot`'s page cache.
  @inline(__always)
  func cpuCache(_ slot: Int) -> SpinLocked<CPUPageCache> {
    SpinLocked(at: UnsafeMutableRawPointer(layout) + PageFrameAllocator.layoutBytes + slot * CPUPageCache.stride)
  }

  /// The global lock and the buddy core behind it. Taken after a CPU's cache lock,
  /// never before one.
  @inline(__always)
  var buddy: SpinLocked<BuddyCore> {
    SpinLocked(at: PageFrameAllocator.buddyAddress(UnsafeMutableRawPointer(layout), slots: layout.pointee.slotCount))
  }

  /// Takes every CPU's page-cache lock in slot order, then the global lock, and keeps
  /// them until `unlockAll`: for a fork (the preload library's pthread_atfork handlers).
  /// - Returns: false, with nothing held, when a lock refused (this CPU holds one).
  /// - Complexity: O(`slots`) plus the waits.
  package func lockAll() -> Bool {
    let cpu = CPU.current
    for slot in 0...slots {
      let taken = slot < slots ? cpuCache(slot).acquireAcrossCalls(cpu: cpu) : buddy.acquireAcrossCalls(cpu: cpu)
      guard taken else {
        for held in 0..<slot { cpuCache(held).releaseAcrossCalls(cpu: cpu) }
        return false
      }
    }
    return true
  }

  /// Releases what `lockAll` took, from the CPU (thread) that took it.
  /// - Complexity: O(`slots`).
  package func unlockAll() {
    let cpu = CPU.current
    buddy.releaseAcrossCalls(cpu: cpu)
    for slot in 0..<slots { cpuCache(slot).releaseAcrossCalls(cpu: cpu) }
  }

  // MARK: Addresses

  /// Physical address of the first managed page.
  public var base: UInt { layout.pointee.ranges[0].base }
  /// Pages covered by the metadata array (all ranges).
  public var pageCount: Int { layout.pointee.pageCount }
  /// pointer = physical + directMapOffset.
  public var directMapOffset: Int { layout.pointee.directMapOffset }
  /// One past the last managed physical byte.
  public var end: UInt { layout.pointee.ranges[layout.pointee.rangeCount - 1].end }

  /// The RAM ranges managed, in address order.
  /// - Complexity: O(ranges).
  public var ranges: PhysicalRanges {
    var list = PhysicalRanges()
    for index in 0..<layout.pointee.rangeCount {
      list.append(PhysicalRange(start: layout.pointee.ranges[index].base, end: layout.pointee.ranges[index].end))
    }
    return list
  }

  /// Physical address of page `index`.
  /// - Precondition: `0 <= index < pageCount` (not checked).
  /// - Complexity: O(log ranges); O(1) with one range.
  @inline(__always)
  public func address(ofPage index: Int) -> UInt { layout.address(ofPage: index) }

  /// Index of the page holding `physical`, or nil outside RAM or in a hole.
  /// - Complexity: O(log ranges).
  @inlinable @inline(__always)
  public func pageIndex(ofPhysical physical: UInt) -> Int? { layout.pageIndex(ofPhysical: physical) }

  /// Pointer through the direct map to physical address `physical`.
  /// - Precondition: `physical` is covered by the direct map (not checked).
  /// - Complexity: O(1).
  @inlinable @inline(__always)
  public func pointer(toPhysical physical: UInt) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: UInt(bitPattern: Int(bitPattern: physical) &+ directMapOffset))!
  }

  /// Physical address behind a direct-map pointer.
  /// - Precondition: `pointer` came from the direct map (not checked).
  /// - Complexity: O(1).
  @inlinable @inline(__always)
  public func physical(of pointer: UnsafeMutableRawPointer) -> UInt {
    UInt(bitPattern: Int(bitPattern: pointer) &- directMapOffset)
  }

  // MARK: Set-up

  /// Marks the pages overlapping `[start, end)` as owned by `owner`. Pages already
  /// reserved change kind (the DTB inside the firmware range, say); the range is
  /// clipped to managed RAM (holes are skipped).
  ///
  /// - Returns: the number of pages marked, or a `PageFrameError` and nothing marked:
  ///   `wrongOwner` for an owner that is neither a reserved kind nor `.heap`;
  ///   `alreadyReleased` when a page in the range is free (on a free list, inside a
  ///   free block, in the hot cache) or allocated; `reentered` under the global lock.
  /// - Complexity: O(pages in the range + maxOrder + log ranges).
  @discardableResult
  public func reserve(start: UInt, end: UInt, as owner: PageOwner) -> Result<Int, PageFrameError> {
    guard owner.isReserved || owner == .heap else { return .failure(PageFrameError(.wrongOwner, start)) }
    return buddy.withLock(cpu: CPU.current) { $0.reserve(start: start, end: end, as: owner) }
      ?? .failure(PageFrameError(.reentered, start))
  }

  /// Hands the unclaimed pages inside `[start, end)` (rounded inwards to pages, clipped
  /// to each RAM range) to the free lists, as the largest naturally aligned blocks that
  /// fit, merged with free buddies.
  ///
  /// - Returns: the number of pages freed, or a `PageFrameError` and nothing freed:
  ///   `reserved` or `alreadyReleased` when any page in the range was reserved,
  ///   released or allocated before; `reentered` under the global lock.
  /// - Complexity: O(pages in the range) for the check, plus O(blocks created) list pushes.
  @discardableResult
  public func release(start: UInt, end: UInt) -> Result<Int, PageFrameError> {
    buddy.withLock(cpu: CPU.current) { $0.release(start: start, end: end) } ?? .failure(PageFrameError(.reentered, start))
  }

  /// `release` without the per-page check, for set-up code that derived the range from
  /// a model of every reservation (memInit): O(blocks created).
  /// - Returns: pages freed (those inside managed RAM); 0 when called under the global lock.
  /// - Precondition: every page in the range is unclaimed.
  @discardableResult
  package func releaseUnchecked(start: UInt, end: UInt) -> Int {
    buddy.withLock(cpu: CPU.current) { $0.releaseUnchecked(start: start, end: end) } ?? 0
  }
}
