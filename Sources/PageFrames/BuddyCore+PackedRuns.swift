// Runs whose length is not a power of two, placed against used memory, and runs that
// shrink in place. A run of 768 pages cut from a 1024-page block leaves a 256-page
// tail; if the next such run took another fresh block, every block would keep its own
// tail and a quarter of RAM would stay free but useless. Placing each run in the free
// stretch it fits, flush against the allocated memory beside it, fills the tails first.
extension BuddyCore {
  /// Free blocks examined per order before `takePackedRun` gives up on that order.
  static let packedRunCandidatesPerOrder = 8

  /// Takes `pages` pages (not a power of two) from a stretch of free blocks, placed flush
  /// against allocated memory where the stretch touches some; the parts of the blocks it
  /// cuts that lie outside the run go back to the lists. Candidates are free blocks of
  /// order `floor(log2(pages)) - 1` and up, lowest order first, at most
  /// `packedRunCandidatesPerOrder` per order: every free stretch of `pages` pages holds
  /// a block of that order at least (it holds an aligned one, and free blocks are fully
  /// merged). Returns the run's first page, or nil (nothing changed).
  /// - Complexity: O(maxOrder × candidates × blocks in a stretch of 2 × `pages`).
  mutating func takePackedRun(_ pages: Int) -> Int? {
    guard pages > 1 else { return nil }
    let lowest = max(0, min(Page.maxOrder, Int.bitWidth - 2 - pages.leadingZeroBitCount))
    for order in lowest...Page.maxOrder where nonEmptyOrders & (1 << UInt32(order)) != 0 {
      var candidate = freeHeads[order]
      var examined = 0
      while candidate != PageEntry.none && examined < BuddyCore.packedRunCandidatesPerOrder {
        let index = Int(candidate)
        if let start = packedStart(around: index, order: order, pages: pages) {
          takeSpan(start, pages: pages)
          return start
        }
        examined += 1
        candidate = entries[index].next
      }
    }
    return nil
  }

  /// Where a run of `pages` pages goes in the free stretch around free block `index`, or
  /// nil when the stretch is shorter. The stretch is followed over whole free blocks
  /// up to `pages` pages beyond the block on each side; the run starts at the stretch's
  /// start when allocated memory (or the range's start) bounds it there, else ends at
  /// its end when that is bounded, else starts at the block.
  private func packedStart(around index: Int, order: Int, pages: Int) -> Int? {
    let range = layout.range(ofIndex: index)
    var start = index
    var leftBounded = false
    while index - start < pages {
      guard let previous = freeBlock(endingAt: start, from: range.firstIndex) else {
        leftBounded = true
        break
      }
      start = previous
    }
    var end = index + (1 << order)
    var rightBounded = false
    while end - (index + (1 << order)) < pages {
      guard end < range.limit else {
        rightBounded = true
        break
      }
      let blockOrder = PageEntry.order(ofWord: entries.loadWord(end))
      guard blockOrder <= Page.maxOrder, headsFreeBlock(end, order: blockOrder) else {
        rightBounded = true
        break
      }
      end += 1 << blockOrder
    }
    guard end - start >= pages else { return nil }
    if leftBounded { return start }
    if rightBounded { return end - pages }
    return index + pages <= end ? index : end - pages
  }

  /// The head of the free block that ends at page `limit`, or nil when the page before
  /// `limit` is allocated, reserved, hot or before `first`.
  private func freeBlock(endingAt limit: Int, from first: Int) -> Int? {
    for order in 0...Page.maxOrder {
      let head = limit - (1 << order)
      guard head >= first else { return nil }
      if headsFreeBlock(head, order: order) { return head }
    }
    return nil
  }

  /// The head of the free block holding page `index` (free blocks are aligned to their
  /// order by frame number, so it is `index` rounded down at one of the orders).
  private func freeBlock(holding index: Int) -> Int {
    let frameShift = layout.range(ofIndex: index).frameShift
    for order in 0...Page.maxOrder {
      let head = ((frameShift + index) & ~((1 << order) - 1)) - frameShift
      if headsFreeBlock(head, order: order) { return head }
    }
    // Unreachable: `packedStart` placed the run inside free blocks.
    return index
  }

  /// Takes the free blocks that `[start, start + pages)` overlaps off the lists and gives
  /// back the parts of them outside it. The caller marks the run.
  private mutating func takeSpan(_ start: Int, pages: Int) {
    let limit = start + pages
    var block = freeBlock(holding: start)
    var before: (Int, Int) = (0, 0)
    var after: (Int, Int) = (0, 0)
    while block < limit {
      let order = entries[block].order
      removeFree(block, order: order)
      let blockEnd = block + (1 << order)
      if block < start { before = (block, start) }
      if blockEnd > limit { after = (limit, blockEnd) }
      block = blockEnd
    }
    // The cut blocks are off the lists and no longer heads, so these merge only with
    // blocks outside the run.
    if before.0 < before.1 {
      entries.setWord(before.0, 0)
      freeSpan(before.0, before.1)
    }
    freeSpan(after.0, after.1)
  }

  /// Shrinks allocated run `index` of `pages` pages to its first `keep` pages, whose
  /// head the caller re-tagged: the entries of the kept pages get the new length, those
  /// of the rest are cleared and merged into the free lists.
  /// - Precondition: 1 <= keep < pages; the run is `owner`'s and its head was claimed.
  /// - Complexity: O(pages) entry writes plus O(maxOrder) per aligned block freed.
  mutating func shrinkClaimedRun(_ index: Int, pages: Int, keep: Int, owner: PageOwner) {
    entries.setPrev(index, UInt32(keep))
    for page in (index + 1)..<(index + keep) { entries.setPrev(page, UInt32(keep)) }
    for page in (index + keep)..<(index + pages) { entries.setEntry(page, next: 0, prev: 0, word: 0) }
    counts.move(pages - keep, from: owner, to: .free)
    freeSpan(index + keep, index + pages)
  }
}
