import KernelSyncAtomics

/// The lock under `SpinLocked` (only KernelSync touches the word): a
/// test-and-test-and-set spinlock in one 32-bit word: 0 when free, the holder's CPU
/// number + 1 when held. Every allocator lock is one: a CPU's page cache and the global
/// page lock, the size-class and object caches, the heap lock, the object-cache list.
/// Uncontended, taking it is one atomic compare-and-swap with acquire ordering and
/// dropping it one release store. Waiters spin on a plain load and try again when the word is 0.
///
/// Why not a ticket lock for the contended ones: a ticket lock hands itself to the next
/// ticket, and when that CPU is not running (a vCPU its host descheduled: QEMU's MTTCG
/// with more vCPUs than host cores, or any guest of an overcommitted hypervisor) the
/// lock sits idle and every CPU behind it waits for a host time slice. Measured: the
/// test kernel's 4-core stress at 40,000 operations per core took 26 s with ticket
/// locks and 0.29 s with this lock on a 2-core host (Linux falls back to test-and-set
/// in guests for the same reason). The price is fairness: a CPU may lose the race
/// several times in a row; nothing here holds a lock long enough for that to matter.
/// `TicketLock` stays for fair FIFO hand-over where every waiter runs (the console).
///
/// The word holds the owner, so the debug checks cost nothing extra: a CPU that takes
/// a lock it holds gets `recursiveAcquire` instead of spinning forever, an unlock by a
/// CPU that does not hold it gets `notOwner` and releases nothing.
@usableFromInline
struct SpinLock: @unchecked Sendable {
  @usableFromInline let word: UnsafeMutablePointer<UInt32>

  /// The lock over `word` (zero: free), which must stay put while it is used.
  /// - Complexity: O(1).
  @inlinable @inline(__always)
  init(_ word: UnsafeMutablePointer<UInt32>) { self.word = word }

  /// Takes the lock, spinning while another CPU holds it.
  /// - Returns: nil, or `recursiveAcquire` when `cpu` holds it already (nothing taken).
  /// - Complexity: O(1) plus the wait.
  @inlinable @inline(__always) @discardableResult
  func lock(cpu: Int) -> LockError? {
    // The uncontended case inline (one exclusive pair); waiting and the checks out of line.
    let mine = UInt32(truncatingIfNeeded: cpu) &+ 1
    if ks_try_acquire(word, mine) == 0 { return nil }
    return lockContended(mine, cpu: cpu)
  }

  /// `lock` after a first attempt found the word held: a recursive acquire, or a wait.
  @usableFromInline @inline(never)
  func lockContended(_ mine: UInt32, cpu: Int) -> LockError? {
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
  @inlinable @inline(__always) @discardableResult
  func unlock(cpu: Int) -> LockError? {
    let held = ks_load_relaxed(word)
    guard held == UInt32(truncatingIfNeeded: cpu) &+ 1 else {
      return .notOwner(cpu: cpu, owner: held == 0 ? nil : Int(held) - 1)
    }
    ks_store_release(word, 0)
    return nil
  }

  /// Releases a lock the caller took itself, earlier in the same function: one
  /// release store, without `unlock`'s owner check (which cannot fail there). For the
  /// allocators' fast paths; everything else uses `unlock(cpu:)`.
  /// - Precondition: the calling CPU took this lock with `lock(cpu:)` and holds it.
  /// - Complexity: O(1).
  @inlinable @inline(__always)
  func release() { ks_store_release(word, 0) }

  /// The CPU holding the lock, or nil.
  @usableFromInline
  var holder: Int? {
    let held = ks_load_relaxed(word)
    return held == 0 ? nil : Int(held) - 1
  }
}
