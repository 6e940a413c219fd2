import KernelSync
import PageFrames

/// What one call has changed and still owes: the TLB invalidations to issue, the table
/// pages that emptied (freed only after those invalidations), and table pages taken in
/// advance for block splits.
struct PendingChanges {
  var addresses = InlineArray<16, UInt>(repeating: 0)
  var count = 0
  /// More than `AddressSpace.invalidationBatch` pages: one full flush instead.
  var flushAll = false
  /// Emptied table pages, linked through their entry 0 (a page-aligned value: an
  /// invalid descriptor to a walker that still reads the page).
  var retired: UInt = 0
  /// Zeroed table pages at hand (the space's pool, and pages set aside for splits),
  /// linked the same way.
  var spares: UInt = 0
  var spareCount = 0

  mutating func invalidate(_ address: UInt) {
    guard !flushAll else { return }
    guard count < AddressSpace.invalidationBatch else {
      flushAll = true
      return
    }
    addresses[count] = address
    count += 1
  }
}

extension AddressSpace {
  /// Bytes of `pages` pages at `address`, or the error for the range: it must end at or
  /// below `limit` (by default the virtual addresses the tables cover).
  func checkedRange(_ address: UInt, pages: Int, limit: UInt? = nil) throws(VirtualMemoryError) -> UInt {
    guard address & UInt(Page.size - 1) == 0 else { throw VirtualMemoryError(.misaligned, address) }
    guard pages > 0 else { throw VirtualMemoryError(.badCount, address) }
    let limit = limit ?? format.addressLimit
    guard address < limit, UInt(pages) <= (limit - address) >> 12 else { throw VirtualMemoryError(.outOfRange, address) }
    return UInt(pages) << 12
  }

  /// The changes of a new call, with the space's pool of empty table pages at hand.
  func begin(_ state: inout SpaceState) -> PendingChanges {
    var changes = PendingChanges()
    changes.spares = state.tablePool
    changes.spareCount = state.tablePoolCount
    state.tablePool = 0
    state.tablePoolCount = 0
    return changes
  }

  /// A zeroed table page: a spare if one is at hand, else a new frame.
  func newTable(_ changes: inout PendingChanges) -> UInt? {
    if changes.spares != 0 {
      let page = changes.spares
      changes.spares = UInt(load(page, 0))
      changes.spareCount -= 1
      store(page, 0, 0)
      return page
    }
    guard let page = frames.allocPages(order: 0, owner: .pageTable) else { return nil }
    return frames.physical(of: page)
  }

  /// Makes sure `count` table pages are at hand for splits; false when the frames run
  /// out (what was taken is kept as spares, given back by `settle`).
  func reserveSpares(_ count: Int, _ changes: inout PendingChanges) -> Bool {
    while changes.spareCount < count {
      guard let page = frames.allocPages(order: 0, owner: .pageTable) else { return false }
      let physical = frames.physical(of: page)
      store(physical, 0, UInt64(changes.spares))
      changes.spares = physical
      changes.spareCount += 1
    }
    return true
  }

  /// Issues what `changes` owes, then frees the retired and unused spare table pages.
  func settle(_ changes: inout PendingChanges, _ state: inout SpaceState) {
    if changes.count == 0 && !changes.flushAll {
      maintenance.publish()
    } else {
      maintenance.beforeInvalidation()
      if changes.flushAll {
        maintenance.invalidateAll()
        state.fullFlushes += 1
      } else {
        for index in 0..<changes.count { maintenance.invalidatePage(changes.addresses[index]) }
        state.pageInvalidations += changes.count
      }
      maintenance.completeInvalidation()
    }
    changes.count = 0
    changes.flushAll = false
    // Only now, with no TLB holding them, may emptied tables be used again: up to
    // `tablePoolLimit` stay in the space's pool (they are zero but for the link), the
    // rest go back to the frames.
    pool(&changes.retired, &state)
    pool(&changes.spares, &state)
  }

  private func pool(_ head: inout UInt, _ state: inout SpaceState) {
    while head != 0 {
      let page = head
      head = UInt(load(page, 0))
      if state.tablePoolCount < AddressSpace.tablePoolLimit {
        store(page, 0, UInt64(state.tablePool))
        state.tablePool = page
        state.tablePoolCount += 1
      } else {
        store(page, 0, 0)
        try? frames.freePages(table(page), order: 0, owner: .pageTable)
      }
    }
  }

  /// Gives the pool's pages back to the frames (`destroy`).
  func drainPool(_ state: inout SpaceState) {
    while state.tablePool != 0 {
      let page = state.tablePool
      state.tablePool = UInt(load(page, 0))
      store(page, 0, 0)
      try? frames.freePages(table(page), order: 0, owner: .pageTable)
    }
    state.tablePoolCount = 0
  }

  /// The first address in `[start, end)` that is mapped (`mapped`) or not mapped
  /// (`!mapped`) below `table` at `level`, whose first entry maps `base`.
  func firstAddress(mapped: Bool, table: UInt, level: Int, base: UInt, start: UInt, end: UInt) -> UInt? {
    let span = TranslationFormat.span(level: level)
    var index = TranslationFormat.index(start, level: level)
    var entryBase = base + UInt(index) * span
    while index < TranslationFormat.entries && entryBase < end {
      let from = max(start, entryBase)
      let bits = load(table, index)
      if format.isTable(bits, level: level) {
        let to = min(end, entryBase + span)
        if let found = firstAddress(
          mapped: mapped, table: format.address(bits), level: level + 1, base: entryBase, start: from, end: to)
        {
          return found
        }
      } else if format.isLeaf(bits, level: level) == mapped {
        return from
      }
      index += 1
      entryBase += span
    }
    return nil
  }

  /// Table pages the splits at boundary `address` need: a block that maps it but does
  /// not start there splits down to the level whose span `address` is a multiple of.
  func splitsNeeded(at address: UInt) -> Int {
    guard let level = leaf(address)?.level, level < 3, address & (TranslationFormat.span(level: level) - 1) != 0 else {
      return 0
    }
    return level == 1 && address & (TranslationFormat.span(level: 2) - 1) != 0 ? 2 : 1
  }

  /// Replaces the block at `index` of `table` (`level`, mapping `base`) with a table of
  /// the next level that maps the same memory the same way, break-before-make: the
  /// block is cleared and invalidated on every CPU before the table goes in.
  /// - Returns: the new table, or nil when no table page is left.
  func split(_ table: UInt, _ index: Int, level: Int, base: UInt, _ changes: inout PendingChanges, _ state: inout SpaceState)
    -> UInt?
  {
    guard let child = newTable(&changes) else { return nil }
    let bits = load(table, index)
    // The block's own bits, with the page bit the next level's leaves need; the output
    // address steps by one child's span, encoded.
    var entry = bits & ~format.pageBit | (level + 1 == 3 ? format.pageBit : 0)
    let step = format.encodedAddress(TranslationFormat.span(level: level + 1))
    let entries = self.table(child)
    for index in 0..<TranslationFormat.entries {
      entries[index] = entry
      entry &+= step
    }
    adjustCount(child, by: TranslationFormat.entries)
    maintenance.orderTableWrites()
    // Between the break and the make nothing but the TLB maintenance touches memory:
    // the state page may lie inside the block being split.
    store(table, index, 0)
    maintenance.beforeInvalidation()
    maintenance.invalidatePage(base)
    maintenance.completeInvalidation()
    store(table, index, format.table(child))
    state.pageInvalidations += 1
    state.tablePages += 1
    state.blockSplits += 1
    return child
  }
}
