import KernelSync

/// A broken invariant of the page allocator: what and where.
public struct PageFrameInvariantError: Error, Sendable {
  /// Which invariant is broken, in words.
  public let reason: StaticString
  /// Where: the index of the page at fault, or, for a check of a whole list, cache or
  /// count, the order, CPU slot, count or owner number the reason is about; -1 for none.
  public let pageIndex: Int
}

extension PageFrameAllocator {
  /// Checks every structure against every other:
  /// - per-owner counters equal a recount of the array, and add up to `pageCount`
  ///   (the accounting identity; so no page is left unclaimed after set-up);
  /// - every page of an allocated run names the run's head and length, and no
  ///   allocated page stands outside a run (heap pages reserved at set-up aside);
  /// - every free-list entry is a free block head of that order, naturally aligned,
  ///   inside RAM, with consistent back links, and its pages are all free;
  /// - no free block has a free buddy of the same order (it would have merged);
  /// - the non-empty-orders bitmap agrees with the lists;
  /// - each CPU's hot cache holds only free order-0 pages, at most `hotLimit`, as many
  ///   as its count says;
  /// - the pages on the free lists and in the hot caches add up to `freePageCount`.
  ///
  /// It holds every CPU's cache lock and the global lock while it runs, so it may run
  /// while other CPUs allocate (they wait).
  /// - Returns: nil, or the first broken invariant (`reentered` as the reason when this
  ///   CPU is inside the allocator already).
  /// - Complexity: O(pageCount). For tests and debug boots.
  public func checkInvariants() -> PageFrameInvariantError? {
    let cpu = CPU.current
    let refused = PageFrameInvariantError(reason: "checked from inside the allocator (lock held)", pageIndex: -1)
    return SpinLocked<CPUPageCache>.withLocked(count: slots, cpu: cpu, { cpuCache($0) }) {
      buddy.withLock(cpu: cpu) { core in checkLocked(core, cpu: cpu) } ?? refused
    } ?? refused
  }

  private func checkLocked(_ core: BuddyCore, cpu: Int) -> PageFrameInvariantError? {
    var recount = InlineArray<16, Int>(repeating: 0)
    var index = 0
    while index < pageCount {
      let entry = entries[index]
      recount[Int(entry.owner.rawValue)] += 1
      if entry.isBlockHead && entry.owner.isAllocatable {
        // An allocated run: every page names the head and the run's length.
        let pages = Int(entry.prev)
        guard pages >= 1, index + pages <= pageCount else {
          return PageFrameInvariantError(reason: "allocated run has a bad length", pageIndex: index)
        }
        for page in (index + 1)..<(index + pages) {
          let body = entries[page]
          guard body.owner == entry.owner, !body.isBlockHead, Int(body.next) == index, Int(body.prev) == pages else {
            return PageFrameInvariantError(reason: "page of an allocated run does not name its head", pageIndex: page)
          }
          recount[Int(entry.owner.rawValue)] += 1
        }
        index += pages
      } else {
        if entry.owner.isAllocatable && entry.owner != .heap {
          return PageFrameInvariantError(reason: "allocated page outside a run", pageIndex: index)
        }
        index += 1
      }
    }
    var total = 0
    for owner in PageOwner.allCases {
      let counted = recount[Int(owner.rawValue)]
      if counted != count(owner) {
        return PageFrameInvariantError(reason: "owner count differs from the array (or pages left unclaimed)", pageIndex: Int(owner.rawValue))
      }
      total += counted
    }
    if total != pageCount {
      return PageFrameInvariantError(reason: "free + reserved + allocated != pages", pageIndex: -1)
    }
    var listed = 0
    for order in 0...Page.maxOrder {
      var index = core.freeHeads[order]
      let bitSet = core.nonEmptyOrders & (1 << UInt32(order)) != 0
      if bitSet != (index != PageEntry.none) {
        return PageFrameInvariantError(reason: "order bitmap disagrees with list", pageIndex: order)
      }
      var previous = PageEntry.none
      var steps = 0
      while index != PageEntry.none {
        let i = Int(index)
        steps += 1
        if i >= pageCount || steps > pageCount {
          return PageFrameInvariantError(reason: "free list leaves RAM or loops", pageIndex: i)
        }
        let entry = entries[i]
        if !entry.isBlockHead || entry.owner != .free || entry.order != order {
          return PageFrameInvariantError(reason: "free list entry is not a free head of its order", pageIndex: i)
        }
        if entry.prev != previous {
          return PageFrameInvariantError(reason: "free list back link broken", pageIndex: i)
        }
        let range = layout.range(ofIndex: i)
        let frameShift = range.frameShift
        if (frameShift + i) & ((1 << order) - 1) != 0 || i + (1 << order) > range.limit {
          return PageFrameInvariantError(reason: "free block misaligned or past its RAM range", pageIndex: i)
        }
        for page in (i + 1)..<(i + (1 << order)) where entries[page].word != 0 {
          return PageFrameInvariantError(reason: "page inside a free block is not plain free", pageIndex: page)
        }
        let buddy = ((frameShift + i) ^ (1 << order)) - frameShift
        if order < Page.maxOrder, buddy >= range.firstIndex, buddy + (1 << order) <= range.limit,
          entries[buddy].isBlockHead, entries[buddy].owner == .free, entries[buddy].order == order
        {
          return PageFrameInvariantError(reason: "free buddies left unmerged", pageIndex: i)
        }
        listed += 1 << order
        previous = index
        index = entry.next
      }
    }
    for slot in 0..<slots {
      guard let (head, count) = cpuCache(slot).withHeld(cpu: cpu, { ($0.head, $0.count) }) else {
        return PageFrameInvariantError(reason: "a CPU cache lock is not held by the check", pageIndex: slot)
      }
      var hot = 0
      index = Int(head)
      while index != Int(PageEntry.none) {
        let i = index
        hot += 1
        guard i < pageCount, hot <= PageFrameAllocator.hotLimit, entries[i].word == PageEntry.hotWord
        else { return PageFrameInvariantError(reason: "hot-page cache holds a page that is not free", pageIndex: i) }
        index = Int(entries[i].next)
      }
      if hot != count { return PageFrameInvariantError(reason: "hot-page count differs", pageIndex: hot) }
      listed += hot
    }
    if listed != freePageCount {
      return PageFrameInvariantError(reason: "free lists disagree with the free count", pageIndex: -1)
    }
    return nil
  }
}
