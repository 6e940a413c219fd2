import KernelSyncAtomics

/// Why a lock call was refused. The lock is unchanged when one is returned.
public enum LockError: Error, Equatable, Sendable {
  /// `lock` by the CPU that already holds the lock (it would spin forever).
  case recursiveAcquire(cpu: Int)
  /// `unlock` by a CPU that does not hold the lock (or of a lock nobody holds).
  case notOwner(cpu: Int, owner: Int?)
}

/// The words of a ticket lock, laid out in memory the lock does not own: 12 bytes,
/// 4-aligned, zero when free. Put one in any structure that needs a lock.
struct TicketLockWords: Sendable {
  var next: UInt32 = 0
  var serving: UInt32 = 0
  /// The holder's CPU number + 1, 0 when free (the debug checks).
  var owner: UInt32 = 0
  init() {}
}

/// A ticket spinlock: CPUs are served in the order they arrived (fair, no starvation),
/// each spinning on `serving` until it shows its ticket. A handle over
/// `TicketLockWords` that live where the protected data lives; copies are the same lock.
///
/// Every call names the calling CPU (`cpu`, 0 ..< 2^31): the kernel passes its CPU
/// number, host tests their thread's. With it the lock refuses a recursive acquire and
/// an unlock by a CPU that does not hold it, instead of deadlocking or freeing another
/// CPU's critical section.
///
/// Fair, but only where every waiter is running: a waiter that is descheduled stalls
/// everyone behind it, which is why the allocators use `SpinLock` (see there). Used for
/// the console lock (`TicketLocked`).
///
/// Lock order in this project (document new locks here): object caches and slabs before
/// the heap, the heap before the page frames; never the reverse.
struct TicketLock: @unchecked Sendable {
  let words: UnsafeMutablePointer<TicketLockWords>

  /// The lock over `words` (which must stay put while it is used).
  /// - Complexity: O(1).
  init(_ words: UnsafeMutablePointer<TicketLockWords>) { self.words = words }

  private var nextWord: UnsafeMutablePointer<UInt32> { UnsafeMutableRawPointer(words).assumingMemoryBound(to: UInt32.self) }
  private var servingWord: UnsafeMutablePointer<UInt32> { nextWord + 1 }
  private var ownerWord: UnsafeMutablePointer<UInt32> { nextWord + 2 }

  /// Takes the lock, spinning until it is this CPU's turn.
  /// - Returns: nil, or `recursiveAcquire` when `cpu` holds it already (nothing taken).
  /// - Complexity: O(1) plus the wait for the CPUs ahead.
  @discardableResult
  func lock(cpu: Int) -> LockError? {
    if ks_load_relaxed(ownerWord) == UInt32(truncatingIfNeeded: cpu) &+ 1 { return .recursiveAcquire(cpu: cpu) }
    let ticket = ks_fetch_increment(nextWord)
    while ks_load_acquire(servingWord) != ticket { ks_spin_hint() }
    ks_store_relaxed(ownerWord, UInt32(truncatingIfNeeded: cpu) &+ 1)
    return nil
  }

  /// Takes the lock only if it is free now.
  /// - Returns: true when taken.
  /// - Complexity: O(1).
  func tryLock(cpu: Int) -> Bool {
    let serving = ks_load_acquire(servingWord)
    guard ks_load_relaxed(nextWord) == serving else { return false }
    // Take the ticket only if nobody took it meanwhile.
    guard ks_compare_exchange(nextWord, serving, serving &+ 1) else { return false }
    ks_store_relaxed(ownerWord, UInt32(truncatingIfNeeded: cpu) &+ 1)
    return true
  }

  /// Releases the lock to the next ticket.
  /// - Returns: nil, or `notOwner` when `cpu` does not hold it (nothing released).
  /// - Complexity: O(1).
  @discardableResult
  func unlock(cpu: Int) -> LockError? {
    let owner = ks_load_relaxed(ownerWord)
    guard owner == UInt32(truncatingIfNeeded: cpu) &+ 1 else {
      return .notOwner(cpu: cpu, owner: owner == 0 ? nil : Int(owner) - 1)
    }
    ks_store_relaxed(ownerWord, 0)
    ks_store_release(servingWord, ks_load_relaxed(servingWord) &+ 1)
    return nil
  }

  /// The CPU holding the lock, or nil.
  var holder: Int? {
    let owner = ks_load_relaxed(ownerWord)
    return owner == 0 ? nil : Int(owner) - 1
  }
}
