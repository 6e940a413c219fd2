/// One CPU's cache of free order-0 pages (Linux's per-CPU page lists, Zircon's per-CPU
/// page cache): the state behind a CPU's lock, in a 128-byte record after the
/// allocator's `FrameLayout`, one per CPU slot (`PageFrameAllocator.slots`), with the CPU's share of the
/// per-owner page counts at `countsOffset` in the record.
///
/// The pages are linked through their entries' `next` and marked free + `flagHot`, so
/// the page array still tells who owns each of them. The record's lock guards the list
/// and the counts; the buddy lists have their own lock. Lock order: a CPU's cache, then
/// the buddy lists, never the reverse.
struct CPUPageCache {
  /// Bytes per record: whole cache lines, and no two records in one pair of lines that
  /// a prefetcher fetches together.
  static let stride = 128
  /// Where in the record the CPU's share of the counts lives (after the lock and state).
  static let countsOffset = 64
  /// Pages a cache holds before a free hands a batch back to the buddy lists.
  static let high = 32
  /// Pages moved between a cache and the buddy lists at a time.
  static let batch = 16

  /// This CPU's share of the page counts (next to the record's state, not in it).
  let counts: PageCounts
  /// The newest page on the list (an entry index), or `PageEntry.none`.
  var head = PageEntry.none
  /// Pages on the list.
  var count = 0

  /// An empty cache counting into `counts`.
  init(counts: PageCounts) { self.counts = counts }

  /// Pushes free page `index` (its entry marked hot by the caller).
  /// - Complexity: O(1).
  @inline(__always)
  mutating func push(_ index: Int, entries: UnsafeMutablePointer<PageEntry>) {
    entries.setNext(index, head)
    head = UInt32(truncatingIfNeeded: index)
    count += 1
  }

  /// Pops the newest page, or nil when the list is empty.
  /// - Complexity: O(1).
  @inline(__always)
  mutating func pop(entries: UnsafeMutablePointer<PageEntry>) -> Int? {
    guard head != PageEntry.none else { return nil }
    let index = Int(head)
    head = entries.loadEntry(index).next
    count -= 1
    return index
  }
}
