/// Zeroes `count` bytes: the assembly bzero in the kernel, memset on the host.
public typealias ZeroFill = @convention(c) (UnsafeMutableRawPointer?, Int) -> Void

/// A buddy allocator over a page metadata array: one `PageEntry` per 4 KiB page of
/// `[base, base + pageCount * 4096)`. Runs of 2^order pages (order 0...10) are naturally
/// aligned in physical memory; freeing coalesces with the buddy at each order.
///
/// Memory is reached through a direct map: the page at physical address `p` is at
/// pointer `p + directMapOffset`. The kernel uses offset 0 (identity); host tests point
/// it at a buffer standing in for RAM.
///
/// Set-up is three steps: `init` (all pages unclaimed), `reserve` for what is in use,
/// `release` for what is free. After that, every page has exactly one owner and
/// `count(.free) + Σ count(reserved kinds) + count(.allocated) == pageCount`.
public struct PageFrameAllocator {
  /// Physical address of page 0 (page aligned).
  public let base: UInt
  /// Pages covered by the metadata array.
  public let pageCount: Int
  /// The metadata array, `pageCount` entries.
  public let entries: UnsafeMutablePointer<PageEntry>
  /// pointer = physical + directMapOffset.
  public let directMapOffset: Int
  let zeroFill: ZeroFill

  /// Heads of the free lists, one per order (page indices).
  var freeHeads: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32,
    UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)
  /// Bit k set <=> the order-k free list is non-empty.
  var nonEmptyOrders: UInt32 = 0
  /// Freed order-0 pages kept unmerged for the next allocPage (linked through `next`),
  /// so a free/alloc pair does not merge up to order 10 and split down again.
  var hotHead: UInt32 = PageEntry.none
  var hotCount = 0
  /// Most pages the hot cache holds; further order-0 frees merge at once.
  public static let hotLimit = 32
  /// Pages per owner kind, indexed by `PageOwner.rawValue`.
  var ownerCounts: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)

  /// Bytes of metadata needed for `pageCount` pages (16 per page).
  /// - Precondition: `pageCount >= 0`.
  /// - Complexity: O(1).
  public static func metadataBytes(pageCount: Int) -> Int {
    pageCount * MemoryLayout<PageEntry>.stride
  }

  /// Lays the metadata array at `metadata` and zeroes it. No page is free yet.
  ///
  /// - Parameters:
  ///   - base: physical address of the first page; must be page aligned.
  ///   - pageCount: pages to manage, at most 2^32 - 1.
  ///   - metadata: room for `metadataBytes(pageCount:)` bytes, 16-byte aligned.
  ///   - directMapOffset: pointer = physical + offset.
  ///   - zeroFill: used for the array and for zeroed pages.
  /// - Precondition: `MemoryLayout<PageEntry>.size == 16`.
  /// - Complexity: O(pageCount), one bzero of the array.
  public init(
    base: UInt, pageCount: Int, metadata: UnsafeMutableRawPointer,
    directMapOffset: Int, zeroFill: ZeroFill
  ) {
    precondition(MemoryLayout<PageEntry>.size == 16, "PageEntry must stay 16 bytes")
    precondition(base & UInt(Page.size - 1) == 0, "base must be page aligned")
    precondition(pageCount >= 0 && pageCount < Int(PageEntry.none), "pageCount out of range")
    self.base = base
    self.pageCount = pageCount
    self.directMapOffset = directMapOffset
    self.zeroFill = zeroFill
    zeroFill(metadata, PageFrameAllocator.metadataBytes(pageCount: pageCount))
    self.entries = metadata.bindMemory(to: PageEntry.self, capacity: pageCount)
    let none = PageEntry.none
    freeHeads = (none, none, none, none, none, none, none, none,
      none, none, none, none, none, none, none, none)
  }

  // MARK: Addresses

  /// One past the last managed physical byte.
  public var end: UInt { base + UInt(pageCount) << UInt(Page.shift) }

  /// Physical address of page `index`.
  /// - Precondition: `0 <= index < pageCount` (not checked).
  /// - Complexity: O(1).
  @inline(__always)
  public func address(ofPage index: Int) -> UInt { base + UInt(index) << UInt(Page.shift) }

  /// Pointer through the direct map to physical address `physical`.
  /// - Precondition: `physical` is covered by the direct map (not checked).
  /// - Complexity: O(1).
  @inline(__always)
  public func pointer(toPhysical physical: UInt) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: UInt(bitPattern: Int(bitPattern: physical) &+ directMapOffset))!
  }

  /// Physical address behind a direct-map pointer.
  /// - Precondition: `pointer` came from the direct map (not checked).
  /// - Complexity: O(1).
  @inline(__always)
  public func physical(of pointer: UnsafeMutableRawPointer) -> UInt {
    UInt(bitPattern: Int(bitPattern: pointer) &- directMapOffset)
  }

  /// The virtual address page `index` is mapped at (the direct map unless set explicitly).
  /// - Precondition: `0 <= index < pageCount`.
  /// - Complexity: O(1).
  public func virtualAddress(ofPage index: Int) -> UInt {
    let explicit = entries[index].virtualPageNumber
    if explicit != 0 { return UInt(explicit) << UInt(Page.shift) }
    return UInt(bitPattern: Int(bitPattern: address(ofPage: index)) &+ directMapOffset)
  }

  // MARK: Set-up

  /// Marks the pages overlapping `[start, end)` as owned by `owner`. Pages already
  /// reserved change kind (the DTB inside the firmware range, say); the range is
  /// clipped to managed RAM. Returns the number of pages marked.
  ///
  /// - Precondition: called before `release`, or on pages that are not free/allocated;
  ///   `owner.isReserved`.
  /// - Complexity: O(pages in the range).
  @discardableResult
  public mutating func reserve(start: UInt, end: UInt, as owner: PageOwner) -> Int {
    precondition(owner.isReserved, "reserve takes a reserved owner kind")
    guard let (first, last) = pageSpan(start: start, end: end) else { return 0 }
    for index in first..<last {
      // Before `release`, a page is either unclaimed (owner .free, counted nowhere)
      // or reserved (counted under its kind).
      let previous = entries[index].owner
      precondition(previous != .allocated && !entries[index].isBlockHead, "reserve after release")
      if previous.isReserved { adjustCount(previous, by: -1) }
      entries[index].owner = owner
      adjustCount(owner, by: 1)
    }
    return last - first
  }

  /// Hands the unclaimed pages inside `[start, end)` (rounded inwards to pages) to the
  /// free lists, as the largest naturally aligned blocks that fit.
  ///
  /// - Precondition: no page in the range has been reserved or released before.
  /// - Complexity: O(blocks created): about range / 4 MiB + 2 * maxOrder list pushes.
  ///   Only block heads are written; the other pages stay zero, which reads as free.
  public mutating func release(start: UInt, end: UInt) {
    let pageMask = UInt(Page.size - 1)
    let roundedStart = max(start, base) &+ pageMask & ~pageMask
    let roundedEnd = min(end, self.end) & ~pageMask
    guard roundedStart < roundedEnd else { return }
    var index = Int((roundedStart - base) >> UInt(Page.shift))
    let limit = Int((roundedEnd - base) >> UInt(Page.shift))
    while index < limit {
      var order = Page.maxOrder
      let frame = Int(base >> UInt(Page.shift)) + index
      while order > 0 && (frame & ((1 << order) - 1) != 0 || index + (1 << order) > limit) {
        order -= 1
      }
      precondition(entries[index].word == 0 && entries[index + (1 << order) - 1].word == 0,
        "release over a claimed page")
      pushFree(index, order: order)
      adjustCount(.free, by: 1 << order)
      index += 1 << order
    }
  }

  // MARK: Allocation

  /// Allocates one page, zeroed.
  ///
  /// - Returns: a direct-map pointer to the page, or nil when no page is free.
  /// - Complexity: O(maxOrder) splits at most, plus zeroing 4 KiB.
  public mutating func allocPage() -> UnsafeMutableRawPointer? {
    allocPages(order: 0)
  }

  /// Allocates 2^order contiguous pages, aligned to their size in physical memory.
  ///
  /// - Parameters:
  ///   - order: 0...`Page.maxOrder`; anything else returns nil.
  ///   - owner: `.allocated`, or `.heap` for heap growth (such pages count as heap and
  ///     cannot be freed with `freePages`).
  ///   - zeroed: zero the run before returning it (default true).
  /// - Returns: a direct-map pointer to the first page, or nil if no run is free.
  /// - Complexity: O(maxOrder) for the search and splits, O(2^order) owner marks, plus
  ///   zeroing when asked. Independent of the amount of RAM.
  public mutating func allocPages(
    order: Int, owner: PageOwner = .allocated, zeroed: Bool = true
  ) -> UnsafeMutableRawPointer? {
    guard order >= 0 && order <= Page.maxOrder else { return nil }
    let index: Int
    if order == 0 && hotHead != PageEntry.none {
      // The most recently freed page: no list or split work.
      index = Int(hotHead)
      hotHead = entries[index].next
      hotCount -= 1
    } else {
      var candidates = nonEmptyOrders & ~((1 << UInt32(order)) &- 1)
      if candidates == 0 && hotCount > 0 {
        drainHotPages()
        candidates = nonEmptyOrders & ~((1 << UInt32(order)) &- 1)
      }
      guard candidates != 0 else { return nil }
      var current = candidates.trailingZeroBitCount
      index = Int(freeHead(current))
      removeFree(index, order: current)
      // Split: keep the lower half, put the upper half back at each order.
      while current > order {
        current -= 1
        pushFree(index + (1 << current), order: current)
      }
    }
    let pages = 1 << order
    entries[index].word = PageEntry.headWord(owner: owner, order: order)
    for page in (index + 1)..<(index + pages) { entries[page].owner = owner }
    adjustCount(.free, by: -pages)
    adjustCount(owner, by: pages)
    let run = pointer(toPhysical: address(ofPage: index))
    if zeroed { zeroFill(run, pages << Page.shift) }
    return run
  }

  /// Returns one page from `allocPage`.
  ///
  /// - Throws: `PageFrameError` (misaligned, outside RAM, double free, reserved page,
  ///   or not the start of an order-0 run); nothing is changed then.
  /// - Complexity: O(maxOrder).
  public mutating func freePage(_ page: UnsafeMutableRawPointer) throws(PageFrameError) {
    try freePages(page, order: 0)
  }

  /// Returns a run from `allocPages(order:)`, coalescing it with free buddies.
  ///
  /// The checks run in a fixed order: alignment, bounds, order, then the page's state.
  /// - Throws: `PageFrameError`; the structures are unchanged when it throws.
  /// - Complexity: O(maxOrder) merges, O(2^order) owner marks.
  public mutating func freePages(_ run: UnsafeMutableRawPointer, order: Int) throws(PageFrameError) {
    let physical = self.physical(of: run)
    let index = try validateRun(physical: physical, order: order)
    let pages = 1 << order
    for page in index..<(index + pages) { entries[page].word = 0 }
    adjustCount(.allocated, by: -pages)
    adjustCount(.free, by: pages)
    if order == 0 && hotCount < PageFrameAllocator.hotLimit {
      entries[index].flags = PageEntry.flagHot
      entries[index].next = hotHead
      hotHead = UInt32(index)
      hotCount += 1
      return
    }
    mergeAndPush(index, order: order)
  }

  /// Merges every page of the hot cache into the buddy free lists. allocPages does this
  /// by itself before it fails; call it to see the largest runs the free pages can form.
  /// - Complexity: O(hotLimit × maxOrder).
  public mutating func drainHotPages() {
    while hotHead != PageEntry.none {
      let index = Int(hotHead)
      hotHead = entries[index].next
      hotCount -= 1
      entries[index].word = 0
      mergeAndPush(index, order: 0)
    }
  }

  /// Puts free block `index` of `order` on the lists after merging it with free buddies.
  private mutating func mergeAndPush(_ index: Int, order: Int) {
    var head = index
    var current = order
    let frameBase = Int(base >> UInt(Page.shift))
    while current < Page.maxOrder {
      let buddyFrame = (frameBase + head) ^ (1 << current)
      let buddy = buddyFrame - frameBase
      guard buddy >= 0, buddy + (1 << current) <= pageCount,
        entries[buddy].isBlockHead, entries[buddy].owner == .free,
        entries[buddy].order == current
      else { break }
      removeFree(buddy, order: current)
      entries[buddy].word = 0
      head = min(head, buddy)
      current += 1
    }
    pushFree(head, order: current)
  }

  /// The page index of a run being freed, after every check.
  private func validateRun(physical: UInt, order: Int) throws(PageFrameError) -> Int {
    // Critical: alignment first, so a misaligned pointer never indexes the array.
    guard physical & UInt(Page.size - 1) == 0 else {
      throw PageFrameError(.misaligned, physical)
    }
    // Critical: bounds, written so that no subtraction can wrap.
    guard physical >= base, physical < end else {
      throw PageFrameError(.outsideRAM, physical)
    }
    guard order >= 0 && order <= Page.maxOrder else {
      throw PageFrameError(.badOrder, physical)
    }
    let index = Int((physical - base) >> UInt(Page.shift))
    let entry = entries[index]
    switch entry.owner {
    case .free: throw PageFrameError(.notAllocated, physical)
    case .allocated: break
    default: throw PageFrameError(.reserved, physical)
    }
    guard entry.isBlockHead, entry.order == order else {
      throw PageFrameError(.notRunStart, physical)
    }
    return index
  }

  // MARK: Queries

  /// Pages on the free lists. O(1).
  public var freePageCount: Int { count(.free) }

  /// Pages owned by `owner`.
  /// - Complexity: O(1): the counters are kept as pages change hands.
  public func count(_ owner: PageOwner) -> Int {
    withUnsafeBytes(of: ownerCounts) { $0.load(fromByteOffset: Int(owner.rawValue) * 8, as: Int.self) }
  }

  /// Pages in the largest free run (a power of two), or 0. O(1).
  public var largestFreeRun: Int {
    nonEmptyOrders == 0 ? 0 : 1 << (31 - nonEmptyOrders.leadingZeroBitCount)
  }

  /// Who owns the page holding physical address `physical`, or nil outside RAM.
  /// - Complexity: O(1).
  public func owner(ofPhysical physical: UInt) -> PageOwner? {
    guard physical >= base, physical < end else { return nil }
    return entries[Int((physical - base) >> UInt(Page.shift))].owner
  }

  // MARK: Free lists

  @inline(__always)
  func freeHead(_ order: Int) -> UInt32 {
    withUnsafeBytes(of: freeHeads) { $0.load(fromByteOffset: order * 4, as: UInt32.self) }
  }

  @inline(__always)
  mutating func setFreeHead(_ order: Int, _ index: UInt32) {
    withUnsafeMutableBytes(of: &freeHeads) { $0.storeBytes(of: index, toByteOffset: order * 4, as: UInt32.self) }
    if index == PageEntry.none {
      nonEmptyOrders &= ~(1 << UInt32(order))
    } else {
      nonEmptyOrders |= 1 << UInt32(order)
    }
  }

  private mutating func pushFree(_ index: Int, order: Int) {
    let head = freeHead(order)
    entries[index].next = head
    entries[index].prev = PageEntry.none
    entries[index].owner = .free
    entries[index].order = order
    entries[index].flags = PageEntry.flagBlockHead
    if head != PageEntry.none { entries[Int(head)].prev = UInt32(index) }
    setFreeHead(order, UInt32(index))
  }

  private mutating func removeFree(_ index: Int, order: Int) {
    let next = entries[index].next
    let prev = entries[index].prev
    if prev == PageEntry.none {
      setFreeHead(order, next)
    } else {
      entries[Int(prev)].next = next
    }
    if next != PageEntry.none { entries[Int(next)].prev = prev }
    entries[index].flags = 0
  }

  @inline(__always)
  private mutating func adjustCount(_ owner: PageOwner, by delta: Int) {
    withUnsafeMutableBytes(of: &ownerCounts) { counts in
      let offset = Int(owner.rawValue) * 8
      counts.storeBytes(of: counts.load(fromByteOffset: offset, as: Int.self) + delta, toByteOffset: offset, as: Int.self)
    }
  }

  /// Page indices [first, last) of the pages overlapping [start, end), clipped to RAM.
  private func pageSpan(start: UInt, end: UInt) -> (Int, Int)? {
    let clippedStart = max(start, base)
    let clippedEnd = min(end, self.end)
    guard clippedStart < clippedEnd else { return nil }
    let first = Int((clippedStart - base) >> UInt(Page.shift))
    let last = Int((clippedEnd - base + UInt(Page.size - 1)) >> UInt(Page.shift))
    return (first, last)
  }
}
