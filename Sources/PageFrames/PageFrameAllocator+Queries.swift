import KernelSync
import KernelSyncAtomics

// What the allocator can tell without changing anything: counts and ownership.
extension PageFrameAllocator {
  /// Pages on the free lists and in every CPU's hot cache.
  /// - Complexity: O(`slots`).
  public var freePageCount: Int { count(.free) }

  /// Pages owned by `owner`: the buddy core's count plus every CPU's share. Exact
  /// whenever no CPU is inside the allocator; a snapshot otherwise.
  /// - Complexity: O(`slots`).
  public func count(_ owner: PageOwner) -> Int {
    var total: UInt32 = 0
    for slot in 0...slots { total &+= counts(slot).share(of: owner) }
    return Int(total)
  }

  /// Pages in the largest free buddy block (a power of two), or 0; hot-cached pages are
  /// not counted.
  /// - Complexity: O(1).
  public var largestFreeRun: Int {
    let orders = buddy.withLock(cpu: CPU.current) { $0.nonEmptyOrders } ?? 0
    return orders == 0 ? 0 : 1 << (31 - orders.leadingZeroBitCount)
  }

  /// Who owns the page holding physical address `physical`, or nil outside RAM.
  /// - Complexity: O(log ranges).
  public func owner(ofPhysical physical: UInt) -> PageOwner? {
    guard let index = pageIndex(ofPhysical: physical) else { return nil }
    return entries.loadEntry(index).owner
  }

  /// The allocated run that holds `physical`: its owner, first page, length and tag.
  /// nil outside RAM, on a free page, or on a page set aside by `reserve`.
  /// - Complexity: O(log ranges) plus at most two entry loads.
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
    let entry = entries.loadEntry(index)
    guard PageOwner.isAllocatable(rawValue: entry.ownerRawValue) else { return nil }
    if entry.isBlockHead { return (entry, index, 0) }
    let head = Int(entry.next)
    guard head < index else { return nil }
    let headEntry = entries.loadEntry(head)
    guard headEntry.isBlockHead, headEntry.ownerRawValue == entry.ownerRawValue else { return nil }
    return (headEntry, head, index &- head)
  }
}

extension PageFrameAllocator {
  /// How many pages into a run of `owner` the page holding `physical` lies, from that
  /// page's own entry (one load): nil when the page is outside RAM or not `owner`'s.
  /// The head's entry is not read, so the caller confirms the run some other way (a
  /// slab checks its header's check word).
  /// - Complexity: O(log ranges); O(1) with one range.
  @inlinable @inline(__always)
  public func pagesIntoRun(containing physical: UInt, owner: PageOwner) -> Int? {
    guard let index = pageIndex(ofPhysical: physical) else { return nil }
    return pagesIntoRun(ofPage: index, owner: owner)
  }

  /// `pagesIntoRun(containing:owner:)` for a direct-map pointer: in the first RAM
  /// range the page index is the pointer's offset into it, with no physical address
  /// and no search.
  /// - Complexity: O(1) in the first range; O(log ranges) elsewhere.
  @inlinable @inline(__always)
  public func pagesIntoRun(at pointer: UnsafeRawPointer, owner: PageOwner) -> Int? {
    let offset = UInt(bitPattern: pointer) &- layout.pointee.firstWindowStart
    if offset < layout.pointee.firstWindowBytes {
      return pagesIntoRun(ofPage: Int(truncatingIfNeeded: offset >> UInt(Page.shift)), owner: owner)
    }
    return pagesIntoRun(containing: UInt(bitPattern: Int(bitPattern: pointer) &- directMapOffset), owner: owner)
  }

  /// The first RAM range's direct-map window: pointers `start ..< start + bytes` are its
  /// pages, in order (what `pagesIntoRun(at:owner:)` tests first). Fixed once the
  /// allocator is set up, so a caller may keep a copy.
  /// - Complexity: O(1).
  package var firstRangeWindow: (start: UInt, bytes: UInt) {
    (layout.pointee.firstWindowStart, layout.pointee.firstWindowBytes)
  }

  /// `pagesIntoRun(at:owner:)` for a pointer `offset` bytes into the first range's
  /// window, for a caller that has compared the offset with a copy of the window.
  /// - Precondition: `offset < firstRangeWindow.bytes` (not checked).
  /// - Complexity: O(1): the entry's word, and `next` for a page inside a run.
  @inlinable @inline(__always)
  package func pagesIntoRun(firstRangeOffset offset: UInt, owner: PageOwner) -> Int? {
    pagesIntoRun(ofPage: Int(truncatingIfNeeded: offset >> UInt(Page.shift)), owner: owner)
  }

  /// `pagesIntoRun` for entry `index` (below `pageCount`).
  @inlinable @inline(__always) @usableFromInline
  func pagesIntoRun(ofPage index: Int, owner: PageOwner) -> Int? {
    // The word, then `next` only for a page inside a run: the free path's two loads.
    let word = entries.loadWord(index)
    guard UInt8(truncatingIfNeeded: word >> PageEntry.ownerShift) == owner.rawValue else { return nil }
    if word >> PageEntry.flagsShift & UInt64(PageEntry.flagBlockHead) != 0 { return 0 }
    let head = Int(ks_load_relaxed32(entries.nextPointer(index)))
    guard head < index else { return nil }
    return index &- head
  }

  /// The tag word of the allocated run that page `index` heads (`allocPages`'s `tag`),
  /// for the run's owner to keep a count in: a page-table page holds its number of valid
  /// entries there. Read and written with relaxed atomics, by the owner only.
  /// - Precondition: `index < pageCount`, and the page heads a run its caller owns.
  /// - Complexity: O(1).
  @inline(__always)
  package func tagWord(ofPage index: Int) -> UnsafeMutablePointer<UInt32> { entries.nextPointer(index) }
}
