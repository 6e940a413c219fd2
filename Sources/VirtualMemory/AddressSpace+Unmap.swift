import KernelSync
import PageFrames

extension AddressSpace {
  /// Removes every mapping in `pages` pages from `virtualAddress` (holes are skipped).
  /// A block partly inside the range is split first (break-before-make); a table that
  /// empties goes back to the frames after the invalidation that covers it.
  ///
  /// - Returns: the bytes that were mapped in the range.
  /// - Throws: `misaligned`, `badCount`, `outOfRange`, `outOfMemory` (a block must be
  ///   split and no frame is left for its table), `reentered`. Nothing changes when one
  ///   is thrown.
  /// - Complexity: O(pages mapped / block size + tables visited), plus at most
  ///   `invalidationBatch` invalidations or one full flush, under the lock.
  @discardableResult
  public func unmap(_ virtualAddress: UInt, pages: Int) throws(VirtualMemoryError) -> UInt {
    let bytes = try checkedRange(virtualAddress, pages: pages)
    let result = locked.withLock(cpu: CPU.current) { state -> Result<UInt, VirtualMemoryError> in
      unmapLocked(virtualAddress, bytes: bytes, &state)
    } ?? .failure(VirtualMemoryError(.reentered, virtualAddress))
    return try result.get()
  }

  /// `unmap` with the lock held.
  func unmapLocked(_ virtualAddress: UInt, bytes: UInt, _ state: inout SpaceState) -> Result<UInt, VirtualMemoryError> {
    if let unmapped = unmapFast(virtualAddress, bytes: bytes, &state) { return .success(unmapped) }
    let end = virtualAddress + bytes
    var changes = begin(&state)
    guard reserveSpares(splitsNeeded(at: virtualAddress) + splitsNeeded(at: end), &changes) else {
      settle(&changes, &state)
      return .failure(VirtualMemoryError(.outOfMemory, virtualAddress))
    }
    let before = state.mappedBytes
    _ = clear(table: root, level: format.firstLevel, base: 0, start: virtualAddress, end: end, nil, &changes, &state)
    settle(&changes, &state)
    return .success(before - state.mappedBytes)
  }

  /// Changes the attributes of every page in `pages` pages from `virtualAddress`;
  /// blocks partly inside the range are split first (break-before-make).
  ///
  /// - Throws: `misaligned`, `badCount`, `outOfRange`, `badAttributes`, `notMapped`
  ///   (the first page in the range that is not mapped), `outOfMemory` (a split found
  ///   no frame), `reentered`. Nothing changes when one is thrown.
  /// - Complexity: as `unmap`.
  public func protect(_ virtualAddress: UInt, pages: Int, _ attributes: MapAttributes) throws(VirtualMemoryError) {
    let bytes = try checkedRange(virtualAddress, pages: pages)
    guard attributes.isValid else { throw VirtualMemoryError(.badAttributes, virtualAddress) }
    let failure = locked.withLock(cpu: CPU.current) { state -> VirtualMemoryError? in
      let end = virtualAddress + bytes
      if let hole = firstAddress(mapped: false, table: root, level: format.firstLevel, base: 0, start: virtualAddress, end: end) {
        return VirtualMemoryError(.notMapped, hole)
      }
      var changes = begin(&state)
      guard reserveSpares(splitsNeeded(at: virtualAddress) + splitsNeeded(at: end), &changes) else {
        settle(&changes, &state)
        return VirtualMemoryError(.outOfMemory, virtualAddress)
      }
      _ = clear(table: root, level: format.firstLevel, base: 0, start: virtualAddress, end: end, attributes, &changes, &state)
      settle(&changes, &state)
      return nil
    } ?? VirtualMemoryError(.reentered, virtualAddress)
    if let failure { throw failure }
  }

  /// Unmaps (`attributes` nil) or re-protects `[start, end)` below `table` at `level`,
  /// whose first entry maps `base`. Splits blocks that straddle the range; retires
  /// tables that empty. False when a split found no table page (only with no spares).
  func clear(
    table: UInt, level: Int, base: UInt, start: UInt, end: UInt, _ attributes: MapAttributes?,
    _ changes: inout PendingChanges, _ state: inout SpaceState
  ) -> Bool {
    let span = TranslationFormat.span(level: level)
    var index = TranslationFormat.index(start, level: level)
    var entryBase = base + UInt(index) * span
    while index < TranslationFormat.entries && entryBase < end {
      let bits = load(table, index)
      let entryEnd = entryBase + span
      if format.isTable(bits, level: level) {
        let child = format.address(bits)
        let queuedBefore = changes.count
        guard
          clear(
            table: child, level: level + 1, base: entryBase, start: max(start, entryBase), end: min(end, entryEnd),
            attributes, &changes, &state)
        else { return false }
        if attributes == nil && entryCount(child) == 0 {
          store(table, index, 0)
          adjustCount(table, by: -1)
          store(child, 0, UInt64(changes.retired))
          changes.retired = child
          state.tablePages -= 1
          // A page invalidation drops every level's cached entries for its address
          // (walk caches included), so one queued below, inside this entry's range,
          // covers the table too; only a table that emptied with nothing queued
          // (created by a `map` that ran out of frames) needs one of its own.
          if !changes.flushAll && changes.count == queuedBefore { changes.invalidate(entryBase) }
        }
      } else if format.isLeaf(bits, level: level) {
        if start <= entryBase && entryEnd <= end {
          if let attributes {
            let replacement = format.leaf(format.address(bits), attributes, level: level)
            if (bits ^ replacement) & format.memoryTypeMask != 0 {
              // A new memory type (normal and device): break-before-make, as a split.
              // Permissions alone may change in place.
              store(table, index, 0)
              maintenance.beforeInvalidation()
              maintenance.invalidatePage(entryBase)
              maintenance.completeInvalidation()
              store(table, index, replacement)
              state.pageInvalidations += 1
              index += 1
              entryBase = entryEnd
              continue
            }
            store(table, index, replacement)
          } else {
            store(table, index, 0)
            adjustCount(table, by: -1)
            state.mappedBytes -= span
          }
          changes.invalidate(entryBase)
        } else {
          // A block the range covers only part of: split it, then visit this entry again.
          guard split(table, index, level: level, base: entryBase, &changes, &state) != nil else { return false }
          continue
        }
      }
      index += 1
      entryBase = entryEnd
    }
    return true
  }
}
