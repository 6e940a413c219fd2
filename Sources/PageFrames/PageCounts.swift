import KernelSyncAtomics

/// A share of the per-owner page counts: each CPU's record has one, and the buddy core
/// has one. A share lives next to its lock's state, not in it (a reader outside the
/// lock must not touch the state), and is written only by the holder of that lock, with
/// relaxed atomic stores; anyone reads it with relaxed atomic loads. A sum over the
/// shares is exact whenever no CPU is between two updates, and never tears. Shares are
/// 32-bit and wrap: one CPU's share may be negative, and their sum modulo 2^32 is the
/// count (below 2^32, as page indices are).
///
/// A handle over `PageCounts.bytes` bytes of the allocator's metadata.
struct PageCounts {
  /// Owner kinds counted (`PageOwner` raw values are below this).
  static let kinds = 16
  /// Bytes of one share.
  static let bytes = kinds * 4

  let base: UnsafeMutablePointer<UInt32>

  /// The share at `memory`, zeroed.
  /// - Complexity: O(kinds).
  init(zeroing memory: UnsafeMutableRawPointer) {
    base = memory.bindMemory(to: UInt32.self, capacity: PageCounts.kinds)
    base.initialize(repeating: 0, count: PageCounts.kinds)
  }

  /// The share at `memory`, set up before.
  /// - Complexity: O(1).
  init(at memory: UnsafeMutableRawPointer) { base = memory.assumingMemoryBound(to: UInt32.self) }

  /// Adds `delta` to the share of `owner`. The holder of the lock this share belongs to
  /// only.
  /// - Complexity: O(1).
  @inline(__always)
  func adjust(_ owner: PageOwner, by delta: Int) {
    let slot = base + Int(owner.rawValue)
    ks_store_relaxed32(slot, ks_load_relaxed32(slot) &+ UInt32(truncatingIfNeeded: delta))
  }

  /// Moves `pages` from the share of `from` to the share of `to`.
  /// - Complexity: O(1).
  @inline(__always)
  func move(_ pages: Int, from: PageOwner, to: PageOwner) {
    adjust(from, by: -pages)
    adjust(to, by: pages)
  }

  /// The share of `owner`, read without the lock.
  /// - Complexity: O(1).
  func share(of owner: PageOwner) -> UInt32 { ks_load_relaxed32(base + Int(owner.rawValue)) }
}
