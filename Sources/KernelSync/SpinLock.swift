import KernelSyncAtomics

/// A test-and-set spinlock in one 32-bit word: 0 when free, the holder's CPU number + 1
/// when held. For locks that are almost never contended: a CPU's own page cache and
/// its size-class caches, which another CPU takes only to free into them or to drain
/// them. Uncontended, taking it is one exclusive load/store pair (LDAXR/STXR) and
/// dropping it one release store; a ticket lock costs about twice that. It is not fair:
/// under contention use `TicketLock`.
///
/// The word holds the owner, so the debug checks cost nothing extra: a CPU that takes
/// a lock it holds gets `recursiveAcquire` instead of spinning forever, an unlock by a
/// CPU that does not hold it gets `notOwner` and releases nothing.
public struct SpinLock: @unchecked Sendable {
  let word: UnsafeMutablePointer<UInt32>

  /// The lock over `word` (zero: free), which must stay put while it is used.
  /// - Complexity: O(1).
  @inline(__always)
  public init(_ word: UnsafeMutablePointer<UInt32>) { self.word = word }

  /// Takes the lock, spinning while another CPU holds it.
  /// - Returns: nil, or `recursiveAcquire` when `cpu` holds it already (nothing taken).
  /// - Complexity: O(1) plus the wait.
  @inline(__always) @discardableResult
  public func lock(cpu: Int) -> LockError? {
    let mine = UInt32(truncatingIfNeeded: cpu) &+ 1
    while true {
      let seen = ks_try_acquire(word, mine)
      if seen == 0 { return nil }
      if seen == mine { return .recursiveAcquire(cpu: cpu) }
      while ks_load_relaxed(word) != 0 { ks_spin_hint() }
    }
  }

  /// Releases the lock.
  /// - Returns: nil, or `notOwner` when `cpu` does not hold it (nothing released).
  /// - Complexity: O(1).
  @inline(__always) @discardableResult
  public func unlock(cpu: Int) -> LockError? {
    let held = ks_load_relaxed(word)
    guard held == UInt32(truncatingIfNeeded: cpu) &+ 1 else {
      return .notOwner(cpu: cpu, owner: held == 0 ? nil : Int(held) - 1)
    }
    ks_store_release(word, 0)
    return nil
  }

  /// The CPU holding the lock, or nil.
  public var holder: Int? {
    let held = ks_load_relaxed(word)
    return held == 0 ? nil : Int(held) - 1
  }
}
