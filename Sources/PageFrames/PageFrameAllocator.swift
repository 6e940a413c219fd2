import KernelSync
import KernelSyncAtomics

/// One RAM range of the allocator: its pages have the consecutive entry indices
/// `[firstIndex, firstIndex + pages)`. Holes between ranges cost no metadata.
@usableFromInline
struct PageArena {
  @usableFromInline var base: UInt
  @usableFromInline var end: UInt
  @usableFromInline var firstIndex: Int
  @usableFromInline var pages: Int
  /// `base` as a frame number, for buddy alignment.
  var baseFrame: Int
}

/// The allocator's state. It lives at the start of the metadata region, in front of the
/// page entries, so every copy of a `PageFrameAllocator` handle works on the same state.
@usableFromInline
struct PageFrameState {
  let pageCount: Int
  @usableFromInline let directMapOffset: Int
  let zeroFill: ZeroFill
  /// The RAM ranges, sorted by address.
  @usableFromInline var arenaCount = 0
  @usableFromInline var arenas = InlineArray<64, PageArena>(repeating: PageArena(base: 0, end: 0, firstIndex: 0, pages: 0, baseFrame: 0))

  init(pageCount: Int, directMapOffset: Int, zeroFill: ZeroFill) {
    self.pageCount = pageCount
    self.directMapOffset = directMapOffset
    self.zeroFill = zeroFill
  }
}

/// The buddy free lists, after the per-CPU records: apart from `PageFrameState`, whose
/// fields every CPU reads without a lock, because these change under the global lock.
@usableFromInline
struct BuddyLists {
  /// Heads of the free lists, one per order (page indices).
  var freeHeads: InlineArray<11, UInt32> = .init(repeating: PageEntry.none)
  /// Bit k set <=> the order-k free list is non-empty.
  var nonEmptyOrders: UInt32 = 0
}

/// A buddy allocator over page metadata: one `PageEntry` per 4 KiB page of each RAM
/// range it manages (up to 64 ranges; the holes between them cost nothing). Runs of
/// 2^order pages (order 0...10) are naturally aligned in physical memory and never
/// straddle two ranges; freeing coalesces with the buddy at each order. Runs of any
/// length come from `allocContiguous`.
///
/// A handle: the state lives in the metadata region it was created over, so a copy is
/// the same allocator, never a fork.
///
/// Safe on every CPU at once. Order-0 pages come from and go to the calling CPU's
/// cache (`CPUPageCache`: up to 32 pages, refilled and drained 16 at a time from the
/// buddy lists under one global lock), so the common page alloc/free pair takes only
/// that CPU's uncontended lock. Any CPU may free any page. Counts, `checkInvariants`
/// and `drainHotPages` account for every CPU's cache.
///
/// Memory is reached through a direct map: the page at physical address `p` is at
/// pointer `p + directMapOffset`. The kernel uses offset 0 (identity); host tests point
/// it at a buffer standing in for RAM.
///
/// Set-up is three steps: `init` (all pages unclaimed), `reserve` for what is in use,
/// `release` for what is free. After that, every page has exactly one owner and
/// `Σ count(owner) == pageCount`.
public struct PageFrameAllocator {
  @usableFromInline let state: UnsafeMutablePointer<PageFrameState>
  /// The metadata array, `pageCount` entries: the ranges' pages one after another.
  public let entries: UnsafeMutablePointer<PageEntry>

  /// Bytes of the state in front of the per-CPU records: a multiple of a record, so
  /// that every record (128 bytes) starts on a 128-byte boundary of the page-aligned
  /// metadata and no two CPUs' records share a line, nor a pair of lines that a
  /// prefetcher fetches together.
  static var coreStateBytes: Int {
    (MemoryLayout<PageFrameState>.stride + CPUPageCache.stride - 1) / CPUPageCache.stride * CPUPageCache.stride
  }
  /// Per-CPU records: one per slot, plus the shared one the buddy lists count in.
  static let cacheRecords = CPU.maximum + 1
  /// Bytes of the buddy lists.
  static var listsBytes: Int { (MemoryLayout<BuddyLists>.stride + 63) & ~63 }
  /// Bytes of the state, the per-CPU records and the lists in front of the entries.
  static var stateBytes: Int { coreStateBytes + cacheRecords * CPUPageCache.stride + listsBytes }

  /// Most pages one CPU's hot cache holds; a free beyond it hands a batch back.
  public static let hotLimit = CPUPageCache.high
  /// Most pages one allocator manages: page indices are 32 bits, with one value for "none".
  public static let maximumPages = Int(PageEntry.none) - 1

  /// Bytes of metadata needed for `pageCount` pages: the state plus 16 per page.
  /// - Precondition: `0 <= pageCount <= maximumPages`.
  /// - Complexity: O(1).
  public static func metadataBytes(pageCount: Int) -> Int {
    stateBytes + pageCount * MemoryLayout<PageEntry>.stride
  }

  /// Lays the allocator's state and the metadata array for one RAM range
  /// `[base, base + pageCount * 4096)` at `metadata` and zeroes the array.
  ///
  /// - Parameters:
  ///   - base: physical address of the first page; must be page aligned.
  ///   - pageCount: pages to manage, at most `maximumPages`.
  ///   - metadata: room for `metadataBytes(pageCount:)` bytes, 64-byte aligned.
  ///   - directMapOffset: pointer = physical + offset.
  ///   - zeroFill: used for the array and for zeroed pages.
  /// - Precondition: the parameters are as described (`init(ranges:...)` checks instead).
  /// - Complexity: O(pageCount), one bzero of the array.
  public init(
    base: UInt, pageCount: Int, metadata: UnsafeMutableRawPointer,
    directMapOffset: Int, zeroFill: ZeroFill
  ) {
    var ranges = PhysicalRanges()
    ranges.append(PhysicalRange(start: base, end: base &+ UInt(max(pageCount, 0)) << UInt(Page.shift)))
    guard let made = PageFrameAllocator(ranges: ranges, metadata: metadata, directMapOffset: directMapOffset, zeroFill: zeroFill)
    else { preconditionFailure("base must be page aligned and pageCount in 0...maximumPages") }
    self = made
  }

  /// Lays the state and one metadata array covering every range of `ranges` at
  /// `metadata`, and zeroes it. No page is free yet. Creating a second allocator over
  /// the same metadata starts it afresh.
  ///
  /// - Parameters:
  ///   - ranges: RAM ranges, page aligned, non-empty, sorted by address, not
  ///     overlapping, none ending at or past 2^64; at most `maximumPages` pages in all.
  ///   - metadata: room for `metadataBytes(pageCount: ranges.totalPages)` bytes, 64-byte
  ///     aligned.
  /// - Returns: nil when `ranges` is not as described (nothing is written then).
  /// - Complexity: O(total pages), one bzero of the array.
  public init?(ranges: PhysicalRanges, metadata: UnsafeMutableRawPointer, directMapOffset: Int, zeroFill: ZeroFill) {
    self.init(ranges: ranges, metadata: metadata, directMapOffset: directMapOffset, zeroFill: zeroFill, metadataIsZero: false)
  }

  /// `init(ranges:...)` over metadata the caller knows to be all zero (fresh anonymous
  /// memory): the array is not written, so its pages are touched only as entries are
  /// used. For user-space hosts of the allocator (the malloc preload library).
  /// - Complexity: O(ranges).
  package init?(ranges: PhysicalRanges, metadata: UnsafeMutableRawPointer, directMapOffset: Int, zeroFill: ZeroFill, metadataIsZero: Bool) {
    guard MemoryLayout<PageEntry>.size == 16, ranges.count >= 1 else { return nil }
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
    if !metadataIsZero { zeroFill(metadata, PageFrameAllocator.metadataBytes(pageCount: total)) }
    state = metadata.bindMemory(to: PageFrameState.self, capacity: 1)
    state.initialize(to: PageFrameState(pageCount: total, directMapOffset: directMapOffset, zeroFill: zeroFill))
    var firstIndex = 0
    for index in 0..<ranges.count {
      let range = ranges[index]
      state.pointee.arenas[index] = PageArena(
        base: range.start, end: range.end, firstIndex: firstIndex, pages: range.pages,
        baseFrame: Int(range.start >> UInt(Page.shift)))
      firstIndex += range.pages
    }
    state.pointee.arenaCount = ranges.count
    for record in 0..<PageFrameAllocator.cacheRecords {
      CPUPageCache(base: metadata + PageFrameAllocator.coreStateBytes + record * CPUPageCache.stride).initialize()
    }
    (metadata + PageFrameAllocator.stateBytes - PageFrameAllocator.listsBytes).bindMemory(to: BuddyLists.self, capacity: 1)
      .initialize(to: BuddyLists())
    entries = (metadata + PageFrameAllocator.stateBytes).bindMemory(to: PageEntry.self, capacity: total)
  }

  // MARK: Locks and per-CPU records

  /// The per-CPU record of slot `slot` (`CPU.maximum` is the shared record).
  @inline(__always)
  func cache(_ slot: Int) -> CPUPageCache {
    CPUPageCache(base: UnsafeMutableRawPointer(state) + PageFrameAllocator.coreStateBytes + slot * CPUPageCache.stride)
  }

  /// The buddy lists (under the global lock).
  var lists: UnsafeMutablePointer<BuddyLists> {
    (UnsafeMutableRawPointer(state) + PageFrameAllocator.stateBytes - PageFrameAllocator.listsBytes)
      .assumingMemoryBound(to: BuddyLists.self)
  }

  /// The shared record: the buddy lists' own count changes go to it, and its lock is
  /// the global lock over the free lists and `nonEmptyOrders`. Taken after a CPU's
  /// cache lock, never before one.
  var shared: CPUPageCache { cache(CPU.maximum) }

  /// Entry `index`'s owner/order/flags word, read atomically: for readers of entries a
  /// CPU may be changing under its own cache lock (buddy merges, the run scan).
  @inlinable @inline(__always)
  func loadWord(_ index: Int) -> UInt64 { ks_load_relaxed64(wordPointer(index)) }

  /// Entry `index`, every field read atomically: for lookups that may meet a page
  /// another CPU is changing (a racing bad free), as plain loads on AArch64.
  @inlinable @inline(__always)
  func loadEntry(_ index: Int) -> PageEntry {
    PageEntry(next: ks_load_relaxed32(nextPointer(index)), prev: ks_load_relaxed32(prevPointer(index)), word: loadWord(index))
  }

  @inlinable @inline(__always)
  func nextPointer(_ index: Int) -> UnsafeMutablePointer<UInt32> {
    UnsafeMutableRawPointer(entries + index).assumingMemoryBound(to: UInt32.self)
  }

  @inlinable @inline(__always)
  func wordPointer(_ index: Int) -> UnsafeMutablePointer<UInt64> {
    UnsafeMutableRawPointer(entries + index).advanced(by: 8).assumingMemoryBound(to: UInt64.self)
  }

  /// Writes entry `index`; its length and word atomically (see `loadWord`).
  @inline(__always)
  func setEntry(_ index: Int, next: UInt32, prev: UInt32, word: UInt64) {
    ks_store_relaxed32(nextPointer(index), next)
    ks_store_relaxed32(prevPointer(index), prev)
    ks_store_relaxed64(wordPointer(index), word)
  }

  @inlinable @inline(__always)
  func prevPointer(_ index: Int) -> UnsafeMutablePointer<UInt32> {
    UnsafeMutableRawPointer(entries + index).advanced(by: 4).assumingMemoryBound(to: UInt32.self)
  }

  // MARK: Addresses

  /// Physical address of the first managed page.
  public var base: UInt { state.pointee.arenas[0].base }
  /// Pages covered by the metadata array (all ranges).
  public var pageCount: Int { state.pointee.pageCount }
  /// pointer = physical + directMapOffset.
  public var directMapOffset: Int { state.pointee.directMapOffset }
  /// One past the last managed physical byte.
  public var end: UInt { state.pointee.arenas[state.pointee.arenaCount - 1].end }

  /// The RAM ranges managed, in address order.
  /// - Complexity: O(ranges).
  public var ranges: PhysicalRanges {
    var list = PhysicalRanges()
    for index in 0..<state.pointee.arenaCount {
      list.append(PhysicalRange(start: state.pointee.arenas[index].base, end: state.pointee.arenas[index].end))
    }
    return list
  }

  /// The range holding entry `index` (the last whose first index is not above it).
  @inline(__always)
  func arena(ofIndex index: Int) -> PageArena {
    let count = state.pointee.arenaCount
    if count == 1 { return state.pointee.arenas[0] }
    var low = 0
    var high = count - 1
    while low < high {
      let middle = (low + high + 1) >> 1
      if state.pointee.arenas[middle].firstIndex <= index { low = middle } else { high = middle - 1 }
    }
    return state.pointee.arenas[low]
  }

  /// The range holding `physical`, or nil in a hole or outside RAM.
  @inlinable @inline(__always)
  func arena(ofPhysical physical: UInt) -> PageArena? {
    let count = state.pointee.arenaCount
    var low = 0
    var high = count &- 1
    while low < high {
      let middle = (low &+ high &+ 1) >> 1
      if state.pointee.arenas[middle].base <= physical { low = middle } else { high = middle &- 1 }
    }
    let found = state.pointee.arenas[low]
    return physical >= found.base && physical < found.end ? found : nil
  }

  /// Physical address of page `index`.
  /// - Precondition: `0 <= index < pageCount` (not checked).
  /// - Complexity: O(log ranges); O(1) with one range.
  @inline(__always)
  public func address(ofPage index: Int) -> UInt {
    let arena = arena(ofIndex: index)
    return arena.base + UInt(index - arena.firstIndex) << UInt(Page.shift)
  }

  /// Index of the page holding `physical`, or nil outside RAM or in a hole.
  /// - Complexity: O(log ranges).
  @inlinable @inline(__always)
  public func pageIndex(ofPhysical physical: UInt) -> Int? {
    guard let arena = arena(ofPhysical: physical) else { return nil }
    // Cannot wrap: base <= physical < end, and the indices fit the array.
    return arena.firstIndex &+ Int(truncatingIfNeeded: (physical &- arena.base) >> UInt(Page.shift))
  }

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

  /// The virtual address page `index` is mapped at (the direct map unless set explicitly).
  /// - Precondition: `0 <= index < pageCount`.
  /// - Complexity: O(log ranges).
  public func virtualAddress(ofPage index: Int) -> UInt {
    let explicit = entries[index].virtualPageNumber
    if explicit != 0 { return UInt(explicit) << UInt(Page.shift) }
    return UInt(bitPattern: Int(bitPattern: address(ofPage: index)) &+ directMapOffset)
  }

  // MARK: Set-up

  /// Marks the pages overlapping `[start, end)` as owned by `owner`. Pages already
  /// reserved change kind (the DTB inside the firmware range, say); the range is
  /// clipped to managed RAM (holes are skipped).
  ///
  /// - Returns: the number of pages marked, or a `PageFrameError` and nothing marked:
  ///   `wrongOwner` for an owner that is neither a reserved kind nor `.heap`;
  ///   `alreadyReleased` when a page in the range is free (on a free list, inside a
  ///   free block, in the hot cache) or allocated.
  /// - Complexity: O(pages in the range + maxOrder).
  @discardableResult
  public func reserve(start: UInt, end: UInt, as owner: PageOwner) -> Result<Int, PageFrameError> {
    guard owner.isReserved || owner == .heap else { return .failure(PageFrameError(.wrongOwner, start)) }
    let cpu = CPU.current
    guard shared.lock.lock(cpu: cpu) == nil else { return .failure(PageFrameError(.reentered, start)) }
    defer { shared.lock.unlock(cpu: cpu) }
    // Check every page first, so a refusal changes nothing.
    var marked = 0
    for pass in 0..<2 {
      for arenaIndex in 0..<state.pointee.arenaCount {
        let arena = state.pointee.arenas[arenaIndex]
        let clippedStart = max(start, arena.base), clippedEnd = min(end, arena.end)
        guard clippedStart < clippedEnd else { continue }
        let first = arena.firstIndex + Int((clippedStart - arena.base) >> UInt(Page.shift))
        let last = arena.firstIndex + Int((clippedEnd - arena.base + Page.offsetMask) >> UInt(Page.shift))
        if pass == 0 {
          if let index = firstReleasedPage(first, last) { return .failure(PageFrameError(.alreadyReleased, address(ofPage: index))) }
          continue
        }
        let word = PageEntry.ownedWord(owner, order: 0, head: false)
        for index in first..<last {
          // Before `release`, a page is either unclaimed (owner .free, counted nowhere)
          // or reserved (counted under its kind).
          let previous = entries[index].owner
          if previous != .free { adjustCount(previous, by: -1) }
          setEntry(index, next: PageEntry.none, prev: 0, word: word)
          adjustCount(owner, by: 1)
        }
        marked += last - first
      }
    }
    return .success(marked)
  }

  /// Hands the unclaimed pages inside `[start, end)` (rounded inwards to pages, clipped
  /// to each RAM range) to the free lists, as the largest naturally aligned blocks that
  /// fit, merged with free buddies.
  ///
  /// - Returns: the number of pages freed, or a `PageFrameError` and nothing freed:
  ///   `reserved` or `alreadyReleased` when any page in the range was reserved,
  ///   released or allocated before.
  /// - Complexity: O(pages in the range) for the check, plus O(blocks created) list pushes.
  @discardableResult
  public func release(start: UInt, end: UInt) -> Result<Int, PageFrameError> {
    let cpu = CPU.current
    guard shared.lock.lock(cpu: cpu) == nil else { return .failure(PageFrameError(.reentered, start)) }
    defer { shared.lock.unlock(cpu: cpu) }
    var freed = 0
    for pass in 0..<2 {
      for arenaIndex in 0..<state.pointee.arenaCount {
        let arena = state.pointee.arenas[arenaIndex]
        guard let span = span(of: arena, start: start, end: end) else { continue }
        if pass == 0 {
          for index in span.first..<span.limit where entries[index].word != 0 {
            let owner = entries[index].owner
            let reason: PageFrameFailure = owner == .free || owner.isAllocatable ? .alreadyReleased : .reserved
            return .failure(PageFrameError(reason, address(ofPage: index)))
          }
          if let index = firstReleasedPage(span.first, span.first + 1) { return .failure(PageFrameError(.alreadyReleased, address(ofPage: index))) }
        } else {
          freeSpan(span.first, span.limit)
          adjustCount(.free, by: span.limit - span.first)
          freed += span.limit - span.first
        }
      }
    }
    return .success(freed)
  }

  /// `release` without the per-page check, for set-up code that derived the range from
  /// a model of every reservation (memInit): O(blocks created).
  /// - Precondition: every page in the range is unclaimed.
  package func releaseUnchecked(start: UInt, end: UInt) {
    let cpu = CPU.current
    guard shared.lock.lock(cpu: cpu) == nil else { return }
    defer { shared.lock.unlock(cpu: cpu) }
    for arenaIndex in 0..<state.pointee.arenaCount {
      guard let span = span(of: state.pointee.arenas[arenaIndex], start: start, end: end) else { continue }
      freeSpan(span.first, span.limit)
      adjustCount(.free, by: span.limit - span.first)
    }
  }

  /// Entry indices of the whole pages of `[start, end)` inside `arena`, or nil.
  private func span(of arena: PageArena, start: UInt, end: UInt) -> (first: Int, limit: Int)? {
    guard let roundedStart = Page.roundUp(max(start, arena.base)) else { return nil }
    let roundedEnd = Page.roundDown(min(end, arena.end))
    guard roundedStart < roundedEnd else { return nil }
    return (arena.firstIndex + Int((roundedStart - arena.base) >> UInt(Page.shift)),
      arena.firstIndex + Int((roundedEnd - arena.base) >> UInt(Page.shift)))
  }

  /// The first page of `[first, last)` that is free (a free head, hot, or inside a free
  /// block that starts before `first`) or allocated, or nil.
  private func firstReleasedPage(_ first: Int, _ last: Int) -> Int? {
    for index in first..<last {
      let entry = entries[index]
      if entry.owner.isAllocatable && entry.owner != .heap { return index }
      if entry.owner == .heap && entry.next != PageEntry.none { return index }
      if entry.owner == .free && (entry.isBlockHead || entry.flags & PageEntry.flagHot != 0) { return index }
    }
    // A free block that begins before `first` and covers it.
    let arena = arena(ofIndex: first)
    let frame = arena.baseFrame + (first - arena.firstIndex)
    for order in 1...Page.maxOrder {
      let headFrame = frame & ~((1 << order) - 1)
      let head = arena.firstIndex + (headFrame - arena.baseFrame)
      guard head >= arena.firstIndex else { break }
      let entry = entries[head]
      if entry.owner == .free && entry.isBlockHead && entry.order >= order { return first }
    }
    return nil
  }

  // MARK: Allocation

  /// Allocates one page, zeroed, owned by `.allocated`.
  ///
  /// - Returns: a direct-map pointer to the page, or nil when no page is free.
  /// - Complexity: O(1) from the CPU's cache; a refill adds O(batch × maxOrder).
  ///   Plus zeroing 4 KiB.
  public func allocPage() -> UnsafeMutableRawPointer? {
    allocPages(order: 0)
  }

  /// Allocates 2^order contiguous pages, aligned to their size in physical memory.
  /// Order 0 comes from the calling CPU's cache (refilled in a batch from the buddy
  /// lists when empty); larger orders from the buddy lists under the global lock.
  /// Before it gives up it drains every CPU's cache into the buddy lists and tries again.
  ///
  /// - Parameters:
  ///   - order: 0...`Page.maxOrder`.
  ///   - owner: what the run is for; only `isAllocatable` owners (`.allocated`, the heap
  ///     kinds, `.slab`, `.pageTable`) are accepted. The run is freed with the same owner.
  ///   - tag: a word the owner keeps in the run's head entry (the heap's id, say).
  ///   - zeroed: zero the run before returning it (default true; outside every lock).
  /// - Returns: a direct-map pointer to the first page; nil if no run is free, the order
  ///   is out of range, the owner is not accepted, or the allocator was re-entered on
  ///   this CPU (nothing changes then).
  /// - Complexity: O(maxOrder) for the search and splits, O(2^order) entry writes, plus
  ///   zeroing when asked. Independent of the amount of RAM.
  public func allocPages(
    order: Int, owner: PageOwner = .allocated, tag: UInt32 = 0, zeroed: Bool = true
  ) -> UnsafeMutableRawPointer? {
    guard order >= 0 && order <= Page.maxOrder, owner.isAllocatable else { return nil }
    let cpu = CPU.current
    var taken = order == 0 ? takeCachedPage(owner: owner, tag: tag, cpu: cpu) : nil
    if taken == nil {
      taken = takeFromBuddy(order: order, cpu: cpu) { index in
        self.markRun(index, pages: 1 << order, order: order, owner: owner, tag: tag, counts: self.shared)
      }
    }
    guard let index = taken else { return nil }
    let run = pointer(toPhysical: address(ofPage: index))
    if zeroed { state.pointee.zeroFill(run, Page.size << order) }
    return run
  }

  /// Allocates `pages` physically contiguous pages, any count, page aligned.
  ///
  /// Up to 1024 pages it takes the smallest buddy run that holds them and gives the
  /// tail back at once (Linux's alloc_pages_exact). Beyond that, or when no such run is
  /// free, it drains every CPU's hot cache and scans the page array for the lowest run
  /// of free blocks that is long enough. With memory fragmented it returns nil although
  /// enough pages may be free in total: it never moves allocated pages.
  ///
  /// - Parameters: as `allocPages`, with `pages` in 1...pageCount (more pages than are
  ///   free return nil at once).
  /// - Returns: a direct-map pointer to the first page, or nil (nothing changes then).
  /// - Complexity: O(maxOrder + pages) when a buddy run serves it; O(pageCount) for the
  ///   scan. Plus zeroing when asked.
  public func allocContiguous(
    pages: Int, owner: PageOwner = .allocated, tag: UInt32 = 0, zeroed: Bool = true
  ) -> UnsafeMutableRawPointer? {
    // More than is free can never be found: no scan for it.
    guard pages > 0, pages <= freePageCount, owner.isAllocatable else { return nil }
    let cpu = CPU.current
    var found: Int? = nil
    if pages <= Page.maxOrderPages {
      let order = Page.order(forPages: pages)
      found = takeFromBuddy(order: order, cpu: cpu, drainFirst: false) { index in
        if pages < 1 << order { self.freeSpan(index + pages, index + (1 << order)) }
        self.markContiguous(index, pages: pages, owner: owner, tag: tag)
      }
    }
    if found == nil {
      drainHotPages()
      guard shared.lock.lock(cpu: cpu) == nil else { return nil }
      found = takeScannedRun(pages)
      if let index = found { markContiguous(index, pages: pages, owner: owner, tag: tag) }
      shared.lock.unlock(cpu: cpu)
    }
    guard let index = found else { return nil }
    let run = pointer(toPhysical: address(ofPage: index))
    if zeroed { state.pointee.zeroFill(run, pages << Page.shift) }
    return run
  }

  private func markContiguous(_ index: Int, pages: Int, owner: PageOwner, tag: UInt32) {
    let order = pages & (pages - 1) == 0 ? pages.trailingZeroBitCount : PageEntry.noOrder
    markRun(index, pages: pages, order: order, owner: owner, tag: tag, counts: shared)
  }

  /// Returns one page from `allocPage`.
  ///
  /// - Throws: `PageFrameError` (misaligned, outside RAM, double free, reserved page,
  ///   another allocator's page, or not the start of an order-0 run); nothing is
  ///   changed then.
  /// - Complexity: O(1) onto the CPU's cache; a drain adds O(batch × maxOrder).
  public func freePage(_ page: UnsafeMutableRawPointer) throws(PageFrameError) {
    try freePages(page, order: 0)
  }

  /// Returns a run from `allocPages(order:owner:)`, coalescing it with free buddies.
  /// An order-0 page goes onto the calling CPU's cache (any CPU may free any page);
  /// when the cache is over `hotLimit` a batch goes back to the buddy lists.
  ///
  /// The checks run in a fixed order: alignment, bounds, order, the page's owner, then
  /// that it heads a run of this order. Two CPUs freeing one page at once: one wins,
  /// the other gets `notAllocated` (the entry changes by compare-and-swap).
  /// - Parameter owner: the owner the run was allocated for.
  /// - Throws: `PageFrameError`; the structures are unchanged when it throws.
  /// - Complexity: O(maxOrder) merges, O(2^order) entry writes.
  public func freePages(_ run: UnsafeMutableRawPointer, order: Int, owner: PageOwner = .allocated) throws(PageFrameError) {
    let physical = self.physical(of: run)
    guard order >= 0 && order <= Page.maxOrder else { throw PageFrameError(.badOrder, physical) }
    let index = try validateRun(physical: physical, pages: 1 << order, owner: owner)
    guard PageEntry(next: 0, prev: 0, word: loadWord(index)).order == order else { throw PageFrameError(.notRunStart, physical) }
    let cpu = CPU.current
    if order == 0 {
      try cachePage(index, owner: owner, cpu: cpu, physical: physical)
      return
    }
    guard shared.lock.lock(cpu: cpu) == nil else { throw PageFrameError(.reentered, physical) }
    // Under the lock the run must still be as validated (no other CPU freed it).
    guard loadWord(index) == PageEntry.ownedWord(owner, order: order, head: true) else {
      shared.lock.unlock(cpu: cpu)
      throw PageFrameError(.notAllocated, physical)
    }
    clearRun(index, pages: 1 << order, owner: owner, counts: shared)
    mergeAndPush(index, order: order)
    shared.lock.unlock(cpu: cpu)
  }

  /// Returns a run from `allocContiguous(pages:owner:)` (or `allocPages` with
  /// 2^order == pages), merging its pages back into the buddy lists.
  ///
  /// - Throws: `PageFrameError` as `freePages`; `notRunStart` when `run` does not head a
  ///   run of exactly `pages` pages. Nothing changes then.
  /// - Complexity: O(pages) entry writes plus O(maxOrder) per aligned block.
  public func freeContiguous(_ run: UnsafeMutableRawPointer, pages: Int, owner: PageOwner = .allocated) throws(PageFrameError) {
    let physical = self.physical(of: run)
    guard pages > 0 else { throw PageFrameError(.badOrder, physical) }
    let cpu = CPU.current
    guard shared.lock.lock(cpu: cpu) == nil else { throw PageFrameError(.reentered, physical) }
    let index: Int
    do throws(PageFrameError) {
      index = try validateRun(physical: physical, pages: pages, owner: owner)
    } catch {
      shared.lock.unlock(cpu: cpu)
      throw error
    }
    clearRun(index, pages: pages, owner: owner, counts: shared)
    freeSpan(index, index + pages)
    shared.lock.unlock(cpu: cpu)
  }

  /// Merges every page of every CPU's hot cache into the buddy free lists. allocPages
  /// does this by itself before it fails; call it to see the largest runs the free
  /// pages can form, or before comparing free-list figures.
  /// - Complexity: O(CPU.maximum + cached pages × maxOrder).
  public func drainHotPages() {
    let cpu = CPU.current
    for slot in 0..<CPU.maximum {
      let cache = cache(slot)
      guard cache.spin.lock(cpu: cpu) == nil else { continue }
      if cache.count > 0, shared.lock.lock(cpu: cpu) == nil {
        drain(cache, pages: cache.count)
        shared.lock.unlock(cpu: cpu)
      }
      cache.spin.unlock(cpu: cpu)
    }
  }

  /// Takes every CPU's page-cache lock in slot order, then the global lock, and keeps
  /// them until `unlockAll`: for a fork (the preload library's pthread_atfork prepare
  /// handler), so that the child never starts with a lock another thread held.
  /// - Returns: false, with nothing held, when a lock refused (this CPU holds one).
  /// - Complexity: O(CPU.maximum) plus the waits.
  package func lockAll() -> Bool {
    let cpu = CPU.current
    for slot in 0...CPU.maximum {
      guard cache(slot).spin.lock(cpu: cpu) == nil else {
        for taken in (0..<slot).reversed() { cache(taken).spin.unlock(cpu: cpu) }
        return false
      }
    }
    return true
  }

  /// Releases what `lockAll` took, from the CPU (thread) that took it.
  /// - Complexity: O(CPU.maximum).
  package func unlockAll() {
    let cpu = CPU.current
    for slot in (0...CPU.maximum).reversed() { cache(slot).spin.unlock(cpu: cpu) }
  }

  // MARK: Per-CPU caches

  /// An order-0 page from CPU `cpu`'s cache, marked for `owner`: the cache's newest
  /// page, after a refill from the buddy lists when it is empty. nil when the buddy
  /// lists have no page either (or the cache lock refused).
  @inline(__always)
  private func takeCachedPage(owner: PageOwner, tag: UInt32, cpu: Int) -> Int? {
    let cache = cache(CPU.slot(cpu))
    guard cache.spin.lock(cpu: cpu) == nil else { return nil }
    if cache.head == PageEntry.none { refill(cache, cpu: cpu) }
    let head = cache.head
    guard head != PageEntry.none else {
      cache.spin.unlock(cpu: cpu)
      return nil
    }
    let index = Int(head)
    cache.head = entries[index].next
    cache.count -= 1
    ks_store_relaxed32(nextPointer(index), tag)
    ks_store_relaxed32(prevPointer(index), 1)
    ks_store_relaxed64(wordPointer(index), PageEntry.ownedWord(owner, order: 0, head: true))
    cache.adjust(ofOwner: Int(PageOwner.free.rawValue), by: -1)
    cache.adjust(ofOwner: Int(owner.rawValue), by: 1)
    cache.spin.unlock(cpu: cpu)
    return index
  }

  /// Puts validated order-0 page `index` of `owner` on CPU `cpu`'s cache; a cache over
  /// its high mark gives its oldest-linked batch back to the buddy lists.
  @inline(__always)
  private func cachePage(_ index: Int, owner: PageOwner, cpu: Int, physical: UInt) throws(PageFrameError) {
    let cache = cache(CPU.slot(cpu))
    guard cache.spin.lock(cpu: cpu) == nil else { throw PageFrameError(.reentered, physical) }
    // One CPU wins a page two CPUs free at once: the entry changes by compare-and-swap.
    guard ks_compare_exchange64(wordPointer(index), PageEntry.ownedWord(owner, order: 0, head: true), PageEntry.hotWord) else {
      cache.spin.unlock(cpu: cpu)
      throw PageFrameError(.notAllocated, physical)
    }
    ks_store_relaxed32(prevPointer(index), 0)
    ks_store_relaxed32(nextPointer(index), cache.head)
    cache.head = UInt32(index)
    cache.count += 1
    cache.adjust(ofOwner: Int(owner.rawValue), by: -1)
    cache.adjust(ofOwner: Int(PageOwner.free.rawValue), by: 1)
    if cache.count > CPUPageCache.high, shared.lock.lock(cpu: cpu) == nil {
      drain(cache, pages: CPUPageCache.batch)
      shared.lock.unlock(cpu: cpu)
    }
    cache.spin.unlock(cpu: cpu)
  }

  /// Moves up to `batch` order-0 pages from the buddy lists onto `cache`.
  /// Holder of `cache`'s lock; takes the global lock.
  private func refill(_ cache: CPUPageCache, cpu: Int) {
    guard shared.lock.lock(cpu: cpu) == nil else { return }
    for _ in 0..<CPUPageCache.batch {
      guard let index = takeBlock(order: 0) else { break }
      setEntry(index, next: cache.head, prev: 0, word: PageEntry.hotWord)
      cache.head = UInt32(index)
      cache.count += 1
    }
    shared.lock.unlock(cpu: cpu)
  }

  /// Moves `pages` pages from `cache` into the buddy lists. Holder of both locks.
  private func drain(_ cache: CPUPageCache, pages: Int) {
    for _ in 0..<pages {
      let head = cache.head
      guard head != PageEntry.none else { return }
      let index = Int(head)
      cache.head = entries[index].next
      cache.count -= 1
      setEntry(index, next: 0, prev: 0, word: 0)
      mergeAndPush(index, order: 0)
    }
  }

  /// A block of `order` from the buddy lists under the global lock, `mark` run on it
  /// before the lock is let go. When none is free: every CPU's cache is drained and the
  /// lists tried once more (unless `drainFirst` is false: the caller scans instead).
  @inline(__always)
  private func takeFromBuddy(order: Int, cpu: Int, drainFirst: Bool = true, _ mark: (Int) -> Void) -> Int? {
    for attempt in 0..<2 {
      if attempt == 1 {
        guard drainFirst else { return nil }
        drainHotPages()
      }
      guard shared.lock.lock(cpu: cpu) == nil else { return nil }
      if let index = takeBlock(order: order) {
        mark(index)
        shared.lock.unlock(cpu: cpu)
        return index
      }
      shared.lock.unlock(cpu: cpu)
    }
    return nil
  }

  // MARK: Queries

  /// Pages on the free lists and in every CPU's hot cache.
  /// - Complexity: O(CPU.maximum).
  public var freePageCount: Int { count(.free) }

  /// Pages owned by `owner`: the shared count plus every CPU's share. Exact whenever no
  /// CPU is inside the allocator; a snapshot otherwise.
  /// - Complexity: O(CPU.maximum).
  public func count(_ owner: PageOwner) -> Int {
    var total: UInt32 = 0
    for record in 0..<PageFrameAllocator.cacheRecords { total &+= cache(record).pages(ofOwner: Int(owner.rawValue)) }
    return Int(total)
  }

  /// Pages in the largest free buddy block (a power of two), or 0; hot-cached pages are
  /// not counted. O(1).
  public var largestFreeRun: Int {
    let cpu = CPU.current
    guard shared.lock.lock(cpu: cpu) == nil else { return 0 }
    let orders = lists.pointee.nonEmptyOrders
    shared.lock.unlock(cpu: cpu)
    return orders == 0 ? 0 : 1 << (31 - orders.leadingZeroBitCount)
  }

  /// Who owns the page holding physical address `physical`, or nil outside RAM.
  /// - Complexity: O(1).
  public func owner(ofPhysical physical: UInt) -> PageOwner? {
    guard let index = pageIndex(ofPhysical: physical) else { return nil }
    return loadEntry(index).owner
  }

  /// The allocated run that holds `physical`: its owner, first page, length and tag.
  /// nil outside RAM, on a free page, or on a page set aside by `reserve`.
  /// - Complexity: O(1): at most two entry loads.
  @inline(__always)
  public func run(containing physical: UInt) -> PageRun? {
    guard let found = runEntry(containing: physical) else { return nil }
    return PageRun(owner: found.head.owner, start: address(ofPage: found.headIndex), pages: Int(found.head.prev), tag: found.head.next)
  }

  /// The head entry of the allocated run holding `physical`, and how many pages into
  /// the run `physical` lies: `run(containing:)` without building a `PageRun`, for
  /// lookups on a free path (the run starts `pagesIn` pages below `physical`'s page).
  /// - Complexity: O(log ranges); O(1) with one range.
  @inlinable @inline(__always)
  public func runEntry(containing physical: UInt) -> (head: PageEntry, headIndex: Int, pagesIn: Int)? {
    guard let index = pageIndex(ofPhysical: physical) else { return nil }
    let entry = loadEntry(index)
    guard PageOwner.isAllocatable(rawValue: entry.ownerRawValue) else { return nil }
    if entry.isBlockHead { return (entry, index, 0) }
    let head = Int(entry.next)
    guard head < index else { return nil }
    let headEntry = loadEntry(head)
    guard headEntry.isBlockHead, headEntry.ownerRawValue == entry.ownerRawValue else { return nil }
    return (headEntry, head, index &- head)
  }


  // MARK: Runs

  /// Takes a free block of exactly `order` off the lists (the smallest non-empty order,
  /// splitting); returns its page index. Holder of the global lock.
  @inline(__always)
  private func takeBlock(order: Int) -> Int? {
    let atLeast = ~((UInt32(1) << UInt32(order)) &- 1)
    let candidates = lists.pointee.nonEmptyOrders & atLeast
    guard candidates != 0 else { return nil }
    var current = candidates.trailingZeroBitCount
    let index = Int(lists.pointee.freeHeads[current])
    removeFree(index, order: current)
    // Split: keep the lower half, put the upper half back at each order.
    while current > order {
      current -= 1
      pushFree(index + (1 << current), order: current)
    }
    return index
  }

  /// Finds the lowest run of whole free blocks covering `pages` pages, takes it off the
  /// lists and gives back what lies past `pages`. Returns its first page. Holder of the
  /// global lock; entries are read atomically (other CPUs change order-0 pages under
  /// their cache locks meanwhile).
  private func takeScannedRun(_ pages: Int) -> Int? {
    var start = 0
    var length = 0
    // A run never crosses from one RAM range into the next.
    for arenaIndex in 0..<state.pointee.arenaCount where length < pages {
      let arena = state.pointee.arenas[arenaIndex]
      length = 0
      var index = arena.firstIndex
      while index < arena.firstIndex + arena.pages {
        let entry = PageEntry(next: 0, prev: ks_load_relaxed32(prevPointer(index)), word: loadWord(index))
        if entry.owner == .free && entry.isBlockHead {
          if length == 0 { start = index }
          length += 1 << entry.order
          index += 1 << entry.order
          if length >= pages { break }
        } else {
          length = 0
          // Skip an allocated run whole; anything else one page at a time.
          index += entry.isBlockHead && entry.prev > 0 ? Int(entry.prev) : 1
        }
      }
    }
    guard length >= pages else { return nil }
    let limit = start + pages
    var block = start
    while block < limit {
      let order = entries[block].order
      removeFree(block, order: order)
      let blockEnd = block + (1 << order)
      if blockEnd > limit { freeSpan(limit, blockEnd) }
      block = blockEnd
    }
    return start
  }

  /// Writes `pages` entries from `index` as one run of `owner`, and moves the pages from
  /// the free count to the owner's in `counts`. Words and lengths are stored atomically:
  /// the run scan of another CPU may read them.
  @inline(__always)
  private func markRun(_ index: Int, pages: Int, order: Int, owner: PageOwner, tag: UInt32, counts: CPUPageCache) {
    ks_store_relaxed32(nextPointer(index), tag)
    ks_store_relaxed32(prevPointer(index), UInt32(pages))
    ks_store_relaxed64(wordPointer(index), PageEntry.ownedWord(owner, order: order, head: true))
    if pages > 1 {
      let body = PageEntry.ownedWord(owner, order: 0, head: false)
      for page in (index + 1)..<(index + pages) {
        ks_store_relaxed32(nextPointer(page), UInt32(index))
        ks_store_relaxed32(prevPointer(page), UInt32(pages))
        ks_store_relaxed64(wordPointer(page), body)
      }
    }
    counts.adjust(ofOwner: Int(PageOwner.free.rawValue), by: -pages)
    counts.adjust(ofOwner: Int(owner.rawValue), by: pages)
  }

  /// Zeroes the entries of a run being freed and moves its pages to the free count.
  @inline(__always)
  private func clearRun(_ index: Int, pages: Int, owner: PageOwner, counts: CPUPageCache) {
    for page in index..<(index + pages) {
      ks_store_relaxed32(nextPointer(page), 0)
      ks_store_relaxed32(prevPointer(page), 0)
      ks_store_relaxed64(wordPointer(page), 0)
    }
    counts.adjust(ofOwner: Int(owner.rawValue), by: -pages)
    counts.adjust(ofOwner: Int(PageOwner.free.rawValue), by: pages)
  }

  /// The page index of a run being freed, after every check but the run's size.
  @inline(__always)
  private func validateRun(physical: UInt, pages: Int, owner: PageOwner) throws(PageFrameError) -> Int {
    // Critical: alignment first, so a misaligned pointer never indexes the array.
    guard Page.isAligned(physical) else { throw PageFrameError(.misaligned, physical) }
    // Critical: bounds, written so that no subtraction can wrap.
    guard let index = pageIndex(ofPhysical: physical) else { throw PageFrameError(.outsideRAM, physical) }
    // Atomic reads: another CPU may be freeing the same page (bad input) right now.
    let entry = PageEntry(next: 0, prev: ks_load_relaxed32(prevPointer(index)), word: loadWord(index))
    let found = entry.owner
    if found == .free { throw PageFrameError(.notAllocated, physical) }
    if !found.isAllocatable { throw PageFrameError(.reserved, physical) }
    if found != owner { throw PageFrameError(.wrongOwner, physical) }
    guard entry.isBlockHead, Int(entry.prev) == pages else { throw PageFrameError(.notRunStart, physical) }
    return index
  }

  /// Frees the unowned, zeroed entries `[first, limit)` as the largest naturally aligned
  /// blocks, each merged with free buddies.
  /// - Precondition: `[first, limit)` lies in one RAM range.
  private func freeSpan(_ first: Int, _ limit: Int) {
    guard first < limit else { return }
    let arena = arena(ofIndex: first)
    // Frame number = index + frameShift inside this range.
    let frameShift = arena.baseFrame - arena.firstIndex
    var index = first
    while index < limit {
      var order = Page.maxOrder
      while order > 0 && ((frameShift + index) & ((1 << order) - 1) != 0 || index + (1 << order) > limit) {
        order -= 1
      }
      mergeAndPush(index, order: order)
      index += 1 << order
    }
  }

  /// Puts free block `index` of `order` on the lists after merging it with free buddies.
  private func mergeAndPush(_ index: Int, order: Int) {
    var head = index
    var current = order
    // Buddies are found by frame number, and only inside this RAM range.
    let arena = arena(ofIndex: index)
    let frameShift = arena.baseFrame - arena.firstIndex
    while current < Page.maxOrder {
      let buddy = ((frameShift + head) ^ (1 << current)) - frameShift
      guard buddy >= arena.firstIndex, buddy + (1 << current) <= arena.firstIndex + arena.pages,
        loadWord(buddy) == PageEntry.ownedWord(.free, order: current, head: true)
      else { break }
      removeFree(buddy, order: current)
      ks_store_relaxed64(wordPointer(buddy), 0)
      head = min(head, buddy)
      current += 1
    }
    pushFree(head, order: current)
  }

  // MARK: Free lists

  @inline(__always)
  func freeHead(_ order: Int) -> UInt32 { lists.pointee.freeHeads[order] }

  @inline(__always)
  private func setFreeHead(_ order: Int, _ index: UInt32) {
    lists.pointee.freeHeads[order] = index
    if index == PageEntry.none {
      lists.pointee.nonEmptyOrders &= ~(1 << UInt32(order))
    } else {
      lists.pointee.nonEmptyOrders |= 1 << UInt32(order)
    }
  }

  private func pushFree(_ index: Int, order: Int) {
    let head = freeHead(order)
    setEntry(index, next: head, prev: PageEntry.none, word: PageEntry.ownedWord(.free, order: order, head: true))
    if head != PageEntry.none { ks_store_relaxed32(prevPointer(Int(head)), UInt32(index)) }
    setFreeHead(order, UInt32(index))
  }

  private func removeFree(_ index: Int, order: Int) {
    let next = entries[index].next
    let prev = entries[index].prev
    if prev == PageEntry.none {
      setFreeHead(order, next)
    } else {
      ks_store_relaxed32(nextPointer(Int(prev)), next)
    }
    if next != PageEntry.none { ks_store_relaxed32(prevPointer(Int(next)), prev) }
    // No longer a head: the order stays, the flags go.
    ks_store_relaxed64(wordPointer(index), loadWord(index) & ~PageEntry.flagsMask)
  }

  /// Set-up changes to the counts (reserve/release), in the shared record.
  @inline(__always)
  private func adjustCount(_ owner: PageOwner, by delta: Int) {
    shared.adjust(ofOwner: Int(owner.rawValue), by: delta)
  }

}

/// An allocated run of pages as its page entries describe it.
public struct PageRun: Sendable, Equatable {
  /// What the run was allocated for.
  public let owner: PageOwner
  /// Physical address of its first page.
  public let start: UInt
  /// Its length in pages.
  public let pages: Int
  /// The word its owner stored with it (`allocPages(tag:)`).
  public let tag: UInt32

  /// A run description (for comparisons in tests).
  /// - Complexity: O(1).
  public init(owner: PageOwner, start: UInt, pages: Int, tag: UInt32) {
    self.owner = owner
    self.start = start
    self.pages = pages
    self.tag = tag
  }
}
