import KernelSyncAtomics
import PageFrames

// The common case on its own path: a map or unmap that stays inside one level-3 table
// which exists already and, for an unmap, does not empty. One walk finds the table; no
// scan from the root, no table created or retired. Everything else (blocks, new or
// emptied tables, ranges across tables) takes the general path, which handles every
// case.
extension AddressSpace {
  /// The level-3 table holding `address`'s entry, when the walk from the root meets
  /// only tables down to it; nil otherwise (a block, or a table missing).
  @inline(__always)
  func levelThreeTable(_ address: UInt) -> UInt? {
    var current = root
    // Constant bounds (the loop unrolls); the levels above the format's root skipped.
    let first = format.firstLevel
    for level in 0..<3 where level >= first {
      let bits = load(current, TranslationFormat.index(address, level: level))
      guard format.isTable(bits, level: level) else { return nil }
      current = format.address(bits)
    }
    return current
  }

  /// Whether `[address, address + bytes)` lies inside one 2 MiB span (one level-3
  /// table) and is not a whole, aligned block `map` would use instead.
  @inline(__always)
  func withinOneTable(_ address: UInt, bytes: UInt) -> Bool {
    let span = TranslationFormat.span(level: 2)
    return bytes < span && address / span == (address + bytes - 1) / span
  }

  /// `map` inside one existing level-3 table: the result, or nil when the general path
  /// must do it.
  func mapFast(_ virtualAddress: UInt, _ physical: UInt, bytes: UInt, _ attributes: MapAttributes, _ state: inout SpaceState)
    -> VirtualMemoryError??
  {
    guard withinOneTable(virtualAddress, bytes: bytes), let table = levelThreeTable(virtualAddress) else { return nil }
    let first = TranslationFormat.index(virtualAddress, level: 3)
    let count = Int(bytes >> 12)
    let entries = self.table(table)
    let valid = format.valid
    for index in first..<(first + count) where ks_load_relaxed64(entries + index) & valid != 0 {
      return .some(VirtualMemoryError(.alreadyMapped, virtualAddress + UInt(index - first) << 12))
    }
    var entry = format.leaf(physical, attributes, level: 3)
    let step = format.encodedAddress(UInt(Page.size))
    for offset in 0..<count {
      ks_store_relaxed64(entries + first + offset, entry)
      entry &+= step
    }
    adjustCount(table, by: count)
    state.mappedBytes += bytes
    maintenance.publish()
    return .some(nil)
  }

  /// `unmap` inside one existing level-3 table that keeps other mappings: the bytes
  /// unmapped, or nil when the general path must do it.
  func unmapFast(_ virtualAddress: UInt, bytes: UInt, _ state: inout SpaceState) -> UInt? {
    guard withinOneTable(virtualAddress, bytes: bytes), let table = levelThreeTable(virtualAddress) else { return nil }
    let first = TranslationFormat.index(virtualAddress, level: 3)
    let count = Int(bytes >> 12)
    let entries = self.table(table)
    let valid = format.valid
    var mapped = 0
    for index in first..<(first + count) where ks_load_relaxed64(entries + index) & valid != 0 { mapped += 1 }
    // Past the batch, only a range that is all (or mostly) mapped is simple: one flush.
    let batch = AddressSpace.invalidationBatch
    guard mapped < entryCount(table), count <= batch || mapped > batch else { return nil }
    guard mapped > 0 else { return 0 }
    var cleared: UInt32 = 0
    for offset in 0..<count where ks_load_relaxed64(entries + first + offset) & valid != 0 {
      ks_store_relaxed64(entries + first + offset, 0)
      if offset < 32 { cleared |= 1 << UInt32(offset) }
    }
    adjustCount(table, by: -mapped)
    let unmapped = UInt(mapped) << 12
    state.mappedBytes -= unmapped
    // The batch rule of `settle`, without a batch: each page cleared, or past
    // `invalidationBatch` pages one full flush.
    maintenance.beforeInvalidation()
    if mapped > batch {
      maintenance.invalidateAll()
      state.fullFlushes += 1
    } else {
      for offset in 0..<count where cleared & 1 << UInt32(offset) != 0 {
        maintenance.invalidatePage(virtualAddress + UInt(offset) << 12)
      }
      state.pageInvalidations += mapped
    }
    maintenance.completeInvalidation()
    return unmapped
  }
}
