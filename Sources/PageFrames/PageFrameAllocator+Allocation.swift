import KernelSync

// Allocation and freeing: the front end's routing between the calling CPU's cache and
// the buddy core, each reached under its lock.
extension PageFrameAllocator {
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
      let entries = self.entries
      taken = takeFromBuddy(order: order, cpu: cpu) { core, index in
        BuddyCore.markRun(index, pages: 1 << order, order: order, owner: owner, tag: tag, entries: entries, counts: core.counts)
      }
    }
    guard let index = taken else { return nil }
    let run = pointer(toPhysical: address(ofPage: index))
    if zeroed { layout.pointee.zeroFill(run, Page.size << order) }
    return run
  }

  /// Allocates `pages` physically contiguous pages, any count, page aligned.
  ///
  /// A power of two up to 1024 pages is one buddy block. Any other count is placed in
  /// a stretch of free blocks, flush against the allocated memory beside it, and the
  /// parts of the blocks it cuts go back at once (so repeated runs of, say, 768 pages
  /// fill the 256-page tails the previous ones left instead of keeping one each). When
  /// that finds nothing it drains every CPU's hot cache, tries again, and last scans the
  /// page array for the lowest run of free blocks that is long enough. With memory
  /// fragmented it returns nil although enough pages may be free in total: it never
  /// moves allocated pages.
  ///
  /// - Parameters: as `allocPages`, with `pages` in 1...pageCount (more pages than are
  ///   free return nil at once).
  /// - Returns: a direct-map pointer to the first page, or nil (nothing changes then).
  /// - Complexity: O(maxOrder + pages) for a buddy block; for a packed run O(pages) plus
  ///   O(maxOrder) per block of the stretches it examines (at most 8 per order); the
  ///   scan O(pageCount). Plus zeroing when asked.
  public func allocContiguous(
    pages: Int, owner: PageOwner = .allocated, tag: UInt32 = 0, zeroed: Bool = true
  ) -> UnsafeMutableRawPointer? {
    // More than is free can never be found: no scan for it.
    guard pages > 0, pages <= freePageCount, owner.isAllocatable else { return nil }
    let cpu = CPU.current
    var found: Int? = nil
    let isPowerOfTwo = pages & (pages - 1) == 0
    if isPowerOfTwo && pages <= Page.maxOrderPages {
      found = takeFromBuddy(order: Page.order(forPages: pages), cpu: cpu, drainFirst: false) { core, index in
        core.markContiguous(index, pages: pages, owner: owner, tag: tag)
      }
    }
    for attempt in 0..<2 where found == nil {
      if attempt == 1 { drainHotPages() }
      found = buddy.withLock(cpu: cpu) { core -> Int? in
        // Packed against used memory first, then the lowest run the page array holds.
        guard let index = (isPowerOfTwo ? nil : core.takePackedRun(pages)) ?? (attempt == 1 ? core.takeScannedRun(pages) : nil)
        else { return nil }
        core.markContiguous(index, pages: pages, owner: owner, tag: tag)
        return index
      } ?? nil
    }
    guard let index = found else { return nil }
    let run = pointer(toPhysical: address(ofPage: index))
    if zeroed { layout.pointee.zeroFill(run, pages << Page.shift) }
    return run
  }

  /// Returns one page from `allocPage`.
  ///
  /// - Throws: `PageFrameError` (misaligned, outside RAM, double free, reserved page,
  ///   another allocator's page, or not the start of an order-0 run); nothing is
  ///   changed then.
  /// - Complexity: O(log ranges) to find the entry; O(1) onto the CPU's cache; a drain
  ///   adds O(batch × maxOrder).
  public func freePage(_ page: UnsafeMutableRawPointer) throws(PageFrameError) {
    try freePages(page, order: 0)
  }

  /// Returns a run from `allocPages(order:owner:)`, coalescing it with free buddies.
  /// An order-0 page goes onto the calling CPU's cache (any CPU may free any page);
  /// when the cache is over `hotLimit` a batch goes back to the buddy lists.
  ///
  /// The checks run in a fixed order: alignment, bounds, order, the page's owner, then
  /// that it heads a run of this order. Two CPUs freeing one run at once, through this
  /// or `freeContiguous`: one wins, the other gets `notAllocated` (`claimRun`).
  /// - Parameters:
  ///   - run: the run's first byte, as `allocPages` returned it.
  ///   - order: the order it was allocated with.
  ///   - owner: the owner the run was allocated for.
  /// - Throws: `PageFrameError`; the structures are unchanged when it throws.
  /// - Complexity: O(log ranges + maxOrder) merges, O(2^order) entry writes.
  public func freePages(_ run: UnsafeMutableRawPointer, order: Int, owner: PageOwner = .allocated) throws(PageFrameError) {
    let physical = self.physical(of: run)
    guard order >= 0 && order <= Page.maxOrder else { throw PageFrameError(.badOrder, physical) }
    let (index, word) = try validateRun(physical: physical, pages: 1 << order, owner: owner)
    guard PageEntry(next: 0, prev: 0, word: word).order == order else { throw PageFrameError(.notRunStart, physical) }
    let cpu = CPU.current
    let entries = self.entries
    let outcome: PageFrameFailure??
    if order == 0 {
      outcome = cpuCache(ofCPU: cpu).withLock(cpu: cpu) { cache -> PageFrameFailure? in
        guard entries.claimRun(index, expected: word, replacement: PageEntry.hotWord) else { return .notAllocated }
        entries.setPrev(index, 0)
        cache.push(index, entries: entries)
        cache.counts.move(1, from: owner, to: .free)
        if cache.count > CPUPageCache.high {
          _ = buddy.withLock(cpu: cpu) { core in PageFrameAllocator.drain(&cache, into: &core, pages: CPUPageCache.batch) }
        }
        return nil
      }
    } else {
      outcome = freeToBuddy(index, pages: 1 << order, owner: owner, word: word, cpu: cpu)
    }
    try PageFrameAllocator.check(outcome, physical)
  }

  /// Returns a run from `allocContiguous(pages:owner:)` (or `allocPages` with
  /// 2^order == pages), merging its pages back into the buddy lists.
  ///
  /// - Throws: `PageFrameError` as `freePages`; `notRunStart` when `run` does not head a
  ///   run of exactly `pages` pages. Nothing changes then.
  /// - Complexity: O(log ranges) plus O(pages) entry writes plus O(maxOrder) per
  ///   aligned block.
  public func freeContiguous(_ run: UnsafeMutableRawPointer, pages: Int, owner: PageOwner = .allocated) throws(PageFrameError) {
    let physical = self.physical(of: run)
    guard pages > 0 else { throw PageFrameError(.badOrder, physical) }
    let (index, word) = try validateRun(physical: physical, pages: pages, owner: owner)
    try PageFrameAllocator.check(freeToBuddy(index, pages: pages, owner: owner, word: word, cpu: CPU.current), physical)
  }

  /// Gives back the tail of a run from `allocContiguous`: the first `keep` pages stay
  /// allocated as a run of `keep` pages (free it with `pages: keep` from then on), the
  /// rest merge into the free lists.
  ///
  /// - Throws: `PageFrameError` as `freeContiguous` for a run that is not `owner`'s
  ///   `pages`-page run, and `badOrder` for `keep` outside 1...`pages` (`keep == pages`
  ///   changes nothing); nothing is changed when it throws.
  /// - Complexity: O(log ranges + pages) entry writes plus O(maxOrder) per block freed.
  public func shrinkContiguous(_ run: UnsafeMutableRawPointer, pages: Int, keep: Int, owner: PageOwner = .allocated) throws(PageFrameError) {
    let physical = self.physical(of: run)
    guard pages > 0, keep >= 1, keep <= pages else { throw PageFrameError(.badOrder, physical) }
    let (index, word) = try validateRun(physical: physical, pages: pages, owner: owner)
    guard keep < pages else { return }
    let entries = self.entries
    let outcome = buddy.withLock(cpu: CPU.current) { core -> PageFrameFailure? in
      guard entries.claimRun(index, expected: word, replacement: PageEntry.word(word, withOrder: PageEntry.runOrder(pages: keep))) else { return .notAllocated }
      core.shrinkClaimedRun(index, pages: pages, keep: keep, owner: owner)
      return nil
    }
    try PageFrameAllocator.check(outcome, physical)
  }

  /// Frees validated run `index` of `pages` pages into the buddy core, if its head still
  /// holds `word`, the word as validated (`claimRun`).
  /// - Returns: `.some(nil)` when freed, `.some(.notAllocated)` when another CPU took the
  ///   run first, nil when the global lock refused (re-entry).
  private func freeToBuddy(_ index: Int, pages: Int, owner: PageOwner, word: UInt64, cpu: Int) -> PageFrameFailure?? {
    let entries = self.entries
    return buddy.withLock(cpu: cpu) { core -> PageFrameFailure? in
      guard entries.claimRun(index, expected: word, replacement: 0) else { return .notAllocated }
      core.freeClaimedRun(index, pages: pages, owner: owner)
      return nil
    }
  }

  /// Throws what a locked free path answered: `reentered` when its lock refused, else
  /// its failure, if any.
  private static func check(_ outcome: PageFrameFailure??, _ physical: UInt) throws(PageFrameError) {
    guard let failure = outcome else { throw PageFrameError(.reentered, physical) }
    if let failure { throw PageFrameError(failure, physical) }
  }

  /// Merges every page of every CPU's hot cache into the buddy free lists. allocPages
  /// does this by itself before it fails; call it to see the largest runs the free
  /// pages can form, or before comparing free-list figures.
  /// - Complexity: O(`slots` + cached pages × maxOrder).
  public func drainHotPages() {
    let cpu = CPU.current
    for slot in 0..<slots {
      _ = cpuCache(slot).withLock(cpu: cpu) { cache in
        let pages = cache.count
        guard pages > 0 else { return }
        _ = buddy.withLock(cpu: cpu) { core in PageFrameAllocator.drain(&cache, into: &core, pages: pages) }
      }
    }
  }

  // MARK: Per-CPU caches

  /// An order-0 page from CPU `cpu`'s cache, marked for `owner`: the cache's newest
  /// page, after a refill from the buddy lists when it is empty. nil when the buddy
  /// lists have no page either (or the cache lock refused).
  @inline(__always)
  private func takeCachedPage(owner: PageOwner, tag: UInt32, cpu: Int) -> Int? {
    let entries = self.entries
    return cpuCache(ofCPU: cpu).withLock(cpu: cpu) { cache -> Int? in
      if cache.head == PageEntry.none { refill(&cache, cpu: cpu) }
      guard let index = cache.pop(entries: entries) else { return nil }
      entries.setEntry(index, next: tag, prev: 1, word: PageEntry.ownedWord(owner, order: 0, head: true))
      cache.counts.move(1, from: .free, to: owner)
      return index
    } ?? nil
  }

  /// Moves up to `batch` order-0 pages from the buddy lists onto `cache` (its lock held).
  private func refill(_ cache: inout CPUPageCache, cpu: Int) {
    let entries = self.entries
    _ = buddy.withLock(cpu: cpu) { core in
      for _ in 0..<CPUPageCache.batch {
        guard let index = core.takeBlock(order: 0) else { break }
        entries.setEntry(index, next: 0, prev: 0, word: PageEntry.hotWord)
        cache.push(index, entries: entries)
      }
    }
  }

  /// Moves `pages` pages from `cache` into the buddy lists (both locks held).
  private static func drain(_ cache: inout CPUPageCache, into core: inout BuddyCore, pages: Int) {
    for _ in 0..<pages {
      guard let index = cache.pop(entries: core.entries) else { return }
      core.entries.setEntry(index, next: 0, prev: 0, word: 0)
      core.mergeAndPush(index, order: 0)
    }
  }

  /// A block of `order` from the buddy lists under the global lock, `mark` run on it
  /// before the lock is let go. When none is free: every CPU's cache is drained and the
  /// lists tried once more (unless `drainFirst` is false: the caller scans instead).
  @inline(__always)
  private func takeFromBuddy(order: Int, cpu: Int, drainFirst: Bool = true, _ mark: (inout BuddyCore, Int) -> Void) -> Int? {
    for attempt in 0..<2 {
      if attempt == 1 {
        guard drainFirst else { return nil }
        drainHotPages()
      }
      let taken = buddy.withLock(cpu: cpu) { core -> Int? in
        guard let index = core.takeBlock(order: order) else { return nil }
        mark(&core, index)
        return index
      }
      guard let taken else { return nil }
      if let index = taken { return index }
    }
    return nil
  }

  /// The page index of a run being freed and its head's word as checked, after every
  /// check but the run's order.
  @inline(__always)
  private func validateRun(physical: UInt, pages: Int, owner: PageOwner) throws(PageFrameError) -> (Int, UInt64) {
    // Critical: alignment first, so a misaligned pointer never indexes the array.
    guard Page.isAligned(physical) else { throw PageFrameError(.misaligned, physical) }
    // Critical: bounds, written so that no subtraction can wrap.
    guard let index = pageIndex(ofPhysical: physical) else { throw PageFrameError(.outsideRAM, physical) }
    // Atomic reads: another CPU may be freeing the same page (bad input) right now.
    let entry = entries.loadEntry(index)
    let found = entry.owner
    if found == .free { throw PageFrameError(.notAllocated, physical) }
    if !found.isAllocatable { throw PageFrameError(.reserved, physical) }
    if found != owner { throw PageFrameError(.wrongOwner, physical) }
    guard entry.isBlockHead, Int(entry.prev) == pages else { throw PageFrameError(.notRunStart, physical) }
    return (index, entry.word)
  }
}
