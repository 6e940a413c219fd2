import KernelSyncAtomics

/// A share of the per-owner page counts: each CPU's record has one, and the buddy
/// lists have one. A share is written only by the holder of the lock its record lives
/// under, with relaxed atomic stores, and read by anyone with relaxed atomic loads (a
/// sum over the shares is exact whenever no CPU is between two updates, and never
/// tears). Shares are 32-bit and wrap: one CPU's share may be negative, and their sum
/// modulo 2^32 is the count (below 2^32, as page indices are).
struct PageCounts {
  /// Owner kinds counted (`PageOwner` raw values are below this).
  static let kinds = 16
  private var shares = InlineArray<16, UInt32>(repeating: 0)

  /// Adds `delta` to the share of `owner` (the record's lock held: the caller has it
  /// `inout` from `withLock`).
  /// - Complexity: O(1).
  @inline(__always)
  mutating func adjust(_ owner: PageOwner, by delta: Int) {
    withUnsafeMutablePointer(to: &shares) { storage in
      let slot = UnsafeMutableRawPointer(storage).assumingMemoryBound(to: UInt32.self) + Int(owner.rawValue)
      ks_store_relaxed32(slot, ks_load_relaxed32(slot) &+ UInt32(truncatingIfNeeded: delta))
    }
  }

  /// Moves `pages` from the share of `from` to the share of `to`.
  /// - Complexity: O(1).
  @inline(__always)
  mutating func move(_ pages: Int, from: PageOwner, to: PageOwner) {
    adjust(from, by: -pages)
    adjust(to, by: pages)
  }

  /// The share of `owner` in the counts at `counts`, read without the lock.
  /// - Complexity: O(1).
  static func share(of owner: PageOwner, in counts: UnsafePointer<PageCounts>) -> UInt32 {
    ks_load_relaxed32(UnsafeRawPointer(counts).assumingMemoryBound(to: UInt32.self) + Int(owner.rawValue))
  }
}
