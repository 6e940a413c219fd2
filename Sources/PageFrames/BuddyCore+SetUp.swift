// Set-up of the buddy core: which pages are in use (`reserve`) and which are free
// (`release`). Runs under the global lock, like the rest of the core.
extension BuddyCore {
  /// See `PageFrameAllocator.reserve(start:end:as:)`.
  mutating func reserve(start: UInt, end: UInt, as owner: PageOwner) -> Result<Int, PageFrameError> {
    // Check every page first, so a refusal changes nothing.
    var marked = 0
    for pass in 0..<2 {
      for rangeIndex in 0..<layout.pointee.rangeCount {
        let range = layout.pointee.ranges[rangeIndex]
        let clippedStart = max(start, range.base), clippedEnd = min(end, range.end)
        guard clippedStart < clippedEnd else { continue }
        let first = range.firstIndex + Int((clippedStart - range.base) >> UInt(Page.shift))
        let last = range.firstIndex + Int((clippedEnd - range.base + Page.offsetMask) >> UInt(Page.shift))
        if pass == 0 {
          if let index = firstReleasedPage(first, last) {
            return .failure(PageFrameError(.alreadyReleased, layout.address(ofPage: index)))
          }
          continue
        }
        let word = PageEntry.ownedWord(owner, order: 0, head: false)
        for index in first..<last {
          // Before `release`, a page is either unclaimed (owner .free, counted nowhere)
          // or reserved (counted under its kind).
          let previous = entries[index].owner
          if previous != .free { counts.adjust(previous, by: -1) }
          entries.setEntry(index, next: PageEntry.none, prev: 0, word: word)
          counts.adjust(owner, by: 1)
        }
        marked += last - first
      }
    }
    return .success(marked)
  }

  /// See `PageFrameAllocator.release(start:end:)`.
  mutating func release(start: UInt, end: UInt) -> Result<Int, PageFrameError> {
    var freed = 0
    for pass in 0..<2 {
      for rangeIndex in 0..<layout.pointee.rangeCount {
        guard let span = layout.span(of: layout.pointee.ranges[rangeIndex], start: start, end: end) else { continue }
        if pass == 0 {
          for index in span.first..<span.limit where entries[index].word != 0 {
            let owner = entries[index].owner
            let reason: PageFrameFailure = owner == .free || owner.isAllocatable ? .alreadyReleased : .reserved
            return .failure(PageFrameError(reason, layout.address(ofPage: index)))
          }
          if let index = firstReleasedPage(span.first, span.first + 1) {
            return .failure(PageFrameError(.alreadyReleased, layout.address(ofPage: index)))
          }
        } else {
          freeSpan(span.first, span.limit)
          counts.adjust(.free, by: span.limit - span.first)
          freed += span.limit - span.first
        }
      }
    }
    return .success(freed)
  }

  /// See `PageFrameAllocator.releaseUnchecked(start:end:)`.
  mutating func releaseUnchecked(start: UInt, end: UInt) -> Int {
    var freed = 0
    for rangeIndex in 0..<layout.pointee.rangeCount {
      guard let span = layout.span(of: layout.pointee.ranges[rangeIndex], start: start, end: end) else { continue }
      freeSpan(span.first, span.limit)
      counts.adjust(.free, by: span.limit - span.first)
      freed += span.limit - span.first
    }
    return freed
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
    let range = layout.range(ofIndex: first)
    let frame = range.baseFrame + (first - range.firstIndex)
    for order in 1...Page.maxOrder {
      let headFrame = frame & ~((1 << order) - 1)
      let head = range.firstIndex + (headFrame - range.baseFrame)
      guard head >= range.firstIndex else { break }
      let entry = entries[head]
      if entry.owner == .free && entry.isBlockHead && entry.order >= order { return first }
    }
    return nil
  }
}
