import KernelSync
import PageFrames

extension AddressSpace {
  /// Maps `pages` pages at `virtualAddress` to the physical pages from `physical` on,
  /// with `attributes`; 1 GiB and 2 MiB blocks wherever both addresses and the rest of
  /// the length allow, 4 KiB pages elsewhere.
  ///
  /// - Throws: `misaligned` (either address), `badCount`, `outOfRange` (the virtual
  ///   range past `format.addressLimit`, the physical one past `format.outputLimit`),
  ///   `badAttributes`, `alreadyMapped` (the first mapped page; use
  ///   `unmap` or `protect` first), `outOfMemory` (no frame for a table: what this call
  ///   mapped is taken out again), `reentered`. Nothing changes when one is thrown.
  /// - Complexity: O(pages / block size + tables created), plus the check that the
  ///   range is unmapped, O(tables it spans), under the lock.
  public func map(_ virtualAddress: UInt, _ physical: UInt, pages: Int, _ attributes: MapAttributes)
    throws(VirtualMemoryError)
  {
    let bytes = try checkedRange(virtualAddress, pages: pages)
    _ = try checkedRange(physical, pages: pages, limit: format.outputLimit)
    guard attributes.isValid else { throw VirtualMemoryError(.badAttributes, virtualAddress) }
    let failure = locked.withLock(cpu: CPU.current) { state -> VirtualMemoryError? in
      mapLocked(virtualAddress, physical, bytes: bytes, attributes, &state)
    } ?? VirtualMemoryError(.reentered, virtualAddress)
    if let failure { throw failure }
  }

  /// `map` with the lock held.
  func mapLocked(_ virtualAddress: UInt, _ physical: UInt, bytes: UInt, _ attributes: MapAttributes, _ state: inout SpaceState)
    -> VirtualMemoryError?
  {
    if let done = mapFast(virtualAddress, physical, bytes: bytes, attributes, &state) { return done }
    let end = virtualAddress + bytes
    if let mapped = firstAddress(mapped: true, table: root, level: format.firstLevel, base: 0, start: virtualAddress, end: end) {
      return VirtualMemoryError(.alreadyMapped, mapped)
    }
    var changes = begin(&state)
    var offset: UInt = 0
    while offset < bytes {
      let address = virtualAddress + offset
      let output = physical + offset
      var level = 3
      for candidate in 1...2 {
        let span = TranslationFormat.span(level: candidate)
        if (address | output) & (span - 1) == 0 && bytes - offset >= span {
          level = candidate
          break
        }
      }
      guard let table = tableFor(address, level: level, &changes, &state) else {
        // Out of table pages: take out what this call mapped (the range was empty) and
        // the tables it created.
        _ = clear(table: root, level: format.firstLevel, base: 0, start: virtualAddress, end: end, nil, &changes, &state)
        settle(&changes, &state)
        return VirtualMemoryError(.outOfMemory, address)
      }
      store(table, TranslationFormat.index(address, level: level), format.leaf(output, attributes, level: level))
      adjustCount(table, by: 1)
      let span = TranslationFormat.span(level: level)
      state.mappedBytes += span
      offset += span
    }
    settle(&changes, &state)
    return nil
  }

  /// The table at `level` on the walk to `address`, created (with those above it) where
  /// missing; nil when no table page is left, or a block is in the way.
  func tableFor(_ address: UInt, level target: Int, _ changes: inout PendingChanges, _ state: inout SpaceState) -> UInt? {
    var current = root
    for level in format.firstLevel..<target {
      let index = TranslationFormat.index(address, level: level)
      let bits = load(current, index)
      if format.isTable(bits, level: level) {
        current = format.address(bits)
        continue
      }
      guard !format.isValid(bits), let child = newTable(&changes) else { return nil }
      maintenance.orderTableWrites()
      store(current, index, format.table(child))
      adjustCount(current, by: 1)
      state.tablePages += 1
      current = child
    }
    return current
  }
}
