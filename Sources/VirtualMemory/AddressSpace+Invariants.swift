import KernelSync
import PageFrames

/// The first broken invariant `AddressSpace.checkInvariants` found.
public struct AddressSpaceInvariantError: Error, Equatable, Sendable {
  /// What is wrong.
  public let reason: StaticString
  /// The table page (or area start) where it was found.
  public let address: UInt

  /// Same address and the same reason text.
  /// - Complexity: O(1).
  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.address == rhs.address && lhs.reason.utf8Start == rhs.reason.utf8Start
  }
}

extension AddressSpace {
  /// Checks the tables against their bookkeeping, under the lock:
  /// - every table page is owned by `.pageTable` in the page frames;
  /// - its tag equals its number of valid entries, and only the root may be empty;
  /// - every valid entry is a table or a leaf the format allows at its level (none at
  ///   level 0), and every leaf's output address is aligned to its span;
  /// - the table pages and mapped bytes found equal the counts kept;
  /// - vmalloc areas are sorted, inside the vmalloc range, apart by their guard pages,
  ///   and every page of each is mapped.
  /// - Returns: nil, or the first broken invariant (nil also when the lock is held by
  ///   this CPU).
  /// - Complexity: O(table pages × 512 + vmalloc pages).
  public func checkInvariants() -> AddressSpaceInvariantError? {
    locked.withLock(cpu: CPU.current) { state -> AddressSpaceInvariantError? in
      var tables = 0
      var mapped: UInt = 0
      if let error = check(table: root, level: format.firstLevel, &tables, &mapped) { return error }
      if tables != state.tablePages { return AddressSpaceInvariantError(reason: "table page count differs", address: root) }
      if mapped != state.mappedBytes { return AddressSpaceInvariantError(reason: "mapped bytes differ", address: root) }
      return checkAreas(state)
    } ?? nil
  }

  private func check(table: UInt, level: Int, _ tables: inout Int, _ mapped: inout UInt) -> AddressSpaceInvariantError? {
    tables += 1
    guard frames.owner(ofPhysical: table) == .pageTable else {
      return AddressSpaceInvariantError(reason: "table page not owned by .pageTable", address: table)
    }
    var valid = 0
    for index in 0..<TranslationFormat.entries {
      let bits = load(table, index)
      guard format.isValid(bits) else { continue }
      valid += 1
      if format.isTable(bits, level: level) {
        if let error = check(table: format.address(bits), level: level + 1, &tables, &mapped) { return error }
      } else if format.isLeaf(bits, level: level) {
        let span = TranslationFormat.span(level: level)
        guard format.address(bits) & (span - 1) == 0 else {
          return AddressSpaceInvariantError(reason: "leaf output address not aligned to its span", address: table)
        }
        mapped += span
      } else {
        return AddressSpaceInvariantError(reason: "descriptor neither a table nor a leaf", address: table)
      }
    }
    if valid != entryCount(table) {
      return AddressSpaceInvariantError(reason: "table tag differs from its valid entries", address: table)
    }
    if valid == 0 && table != root {
      return AddressSpaceInvariantError(reason: "empty table page not freed", address: table)
    }
    return nil
  }
}
