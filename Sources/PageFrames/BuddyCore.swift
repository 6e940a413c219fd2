/// The buddy allocator itself, single-threaded: the free lists of blocks of 2^order
/// pages (order 0...10), naturally aligned in physical memory and never straddling two
/// RAM ranges; a freed block merges with its free buddy at each order. It is the state
/// behind the allocator's global lock (`PageFrameAllocator` reaches it only through
/// `SpinLocked.withLock`), so every method here runs with that lock held; the model
/// tests drive it through the front end.
///
/// It also counts the pages its own changes move between owners (`counts`, its share of
/// the per-owner counts).
struct BuddyCore {
  /// The buddy lists' share of the page counts (set-up, larger orders, runs), next to
  /// the core, not in it.
  let counts: PageCounts
  /// Heads of the free lists, one per order (page indices).
  var freeHeads = InlineArray<11, UInt32>(repeating: PageEntry.none)
  /// Bit k set <=> the order-k free list is non-empty.
  var nonEmptyOrders: UInt32 = 0
  let entries: UnsafeMutablePointer<PageEntry>
  let layout: UnsafeMutablePointer<FrameLayout>

  init(entries: UnsafeMutablePointer<PageEntry>, layout: UnsafeMutablePointer<FrameLayout>, counts: PageCounts) {
    self.counts = counts
    self.entries = entries
    self.layout = layout
  }

  // MARK: Blocks

  /// Takes a free block of exactly `order` off the lists (the smallest non-empty order,
  /// splitting); returns its page index.
  /// - Complexity: O(maxOrder).
  @inline(__always)
  mutating func takeBlock(order: Int) -> Int? {
    let atLeast = ~((UInt32(1) << UInt32(order)) &- 1)
    let candidates = nonEmptyOrders & atLeast
    guard candidates != 0 else { return nil }
    var current = candidates.trailingZeroBitCount
    let index = Int(freeHeads[current])
    removeFree(index, order: current)
    // Split: keep the lower half, put the upper half back at each order.
    while current > order {
      current -= 1
      pushFree(index + (1 << current), order: current)
    }
    return index
  }

  /// Finds the lowest run of whole free blocks covering `pages` pages, takes it off the
  /// lists and gives back what lies past `pages`. Returns its first page. Entries are
  /// read atomically: other CPUs change order-0 pages under their cache locks meanwhile.
  /// - Complexity: O(pageCount).
  mutating func takeScannedRun(_ pages: Int) -> Int? {
    var start = 0
    var length = 0
    // A run never crosses from one RAM range into the next.
    for rangeIndex in 0..<layout.pointee.rangeCount where length < pages {
      let range = layout.pointee.ranges[rangeIndex]
      length = 0
      var index = range.firstIndex
      while index < range.limit {
        let entry = PageEntry(next: 0, prev: entries.loadEntry(index).prev, word: entries.loadWord(index))
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

  /// Frees the unowned, zeroed entries `[first, limit)` as the largest naturally aligned
  /// blocks, each merged with free buddies.
  /// - Precondition: `[first, limit)` lies in one RAM range.
  /// - Complexity: O(blocks × maxOrder).
  mutating func freeSpan(_ first: Int, _ limit: Int) {
    guard first < limit else { return }
    let frameShift = layout.range(ofIndex: first).frameShift
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
  /// - Complexity: O(maxOrder).
  mutating func mergeAndPush(_ index: Int, order: Int) {
    var head = index
    var current = order
    // Buddies are found by frame number, and only inside this RAM range.
    let range = layout.range(ofIndex: index)
    let frameShift = range.frameShift
    while current < Page.maxOrder {
      let buddy = ((frameShift + head) ^ (1 << current)) - frameShift
      guard buddy >= range.firstIndex, buddy + (1 << current) <= range.limit,
        headsFreeBlock(buddy, order: current)
      else { break }
      removeFree(buddy, order: current)
      entries.setWord(buddy, 0)
      head = min(head, buddy)
      current += 1
    }
    pushFree(head, order: current)
  }

  // MARK: Runs

  /// Writes `pages` entries from `index` as one run of `owner` (`order`, or `noOrder`
  /// for a length that is not a power of two) and moves the pages from the free count to
  /// the owner's in `counts`. Stored atomically: another CPU's run scan may read them.
  /// - Complexity: O(pages).
  @inline(__always)
  static func markRun(
    _ index: Int, pages: Int, order: Int, owner: PageOwner, tag: UInt32,
    entries: UnsafeMutablePointer<PageEntry>, counts: PageCounts
  ) {
    entries.setNext(index, tag)
    entries.setPrev(index, UInt32(pages))
    entries.setWord(index, PageEntry.ownedWord(owner, order: order, head: true))
    if pages > 1 {
      let body = PageEntry.ownedWord(owner, order: 0, head: false)
      for page in (index + 1)..<(index + pages) { entries.setEntry(page, next: UInt32(index), prev: UInt32(pages), word: body) }
    }
    counts.move(pages, from: .free, to: owner)
  }

  /// `markRun` for a run of any length.
  mutating func markContiguous(_ index: Int, pages: Int, owner: PageOwner, tag: UInt32) {
    BuddyCore.markRun(index, pages: pages, order: PageEntry.runOrder(pages: pages), owner: owner, tag: tag, entries: entries, counts: counts)
  }

  /// Whether page `index` heads a free block of `order` on the lists.
  @inline(__always)
  func headsFreeBlock(_ index: Int, order: Int) -> Bool {
    entries.loadWord(index) == PageEntry.ownedWord(.free, order: order, head: true)
  }

  /// Frees run `index` of `pages` pages of `owner`, whose head `claimRun` took: zeroes
  /// its entries, moves the pages to the free count and merges them into the lists.
  /// - Complexity: O(pages) entry writes plus O(maxOrder) per aligned block.
  mutating func freeClaimedRun(_ index: Int, pages: Int, owner: PageOwner) {
    for page in index..<(index + pages) { entries.setEntry(page, next: 0, prev: 0, word: 0) }
    counts.move(pages, from: owner, to: .free)
    freeSpan(index, index + pages)
  }

  // MARK: Free lists

  @inline(__always)
  private mutating func setFreeHead(_ order: Int, _ index: UInt32) {
    freeHeads[order] = index
    if index == PageEntry.none {
      nonEmptyOrders &= ~(1 << UInt32(order))
    } else {
      nonEmptyOrders |= 1 << UInt32(order)
    }
  }

  private mutating func pushFree(_ index: Int, order: Int) {
    let head = freeHeads[order]
    entries.setEntry(index, next: head, prev: PageEntry.none, word: PageEntry.ownedWord(.free, order: order, head: true))
    if head != PageEntry.none { entries.setPrev(Int(head), UInt32(index)) }
    setFreeHead(order, UInt32(index))
  }

  mutating func removeFree(_ index: Int, order: Int) {
    let next = entries[index].next
    let prev = entries[index].prev
    if prev == PageEntry.none {
      setFreeHead(order, next)
    } else {
      entries.setNext(Int(prev), next)
    }
    if next != PageEntry.none { entries.setPrev(Int(next), prev) }
    // No longer a head: the order stays, the flags go.
    entries.setWord(index, entries.loadWord(index) & ~PageEntry.flagsMask)
  }
}
