import KernelSyncAtomics

/// The words of a `SpinBarrier`: 8 bytes, zero to start, in memory the barrier does
/// not own.
public struct SpinBarrierWords: Sendable {
  var arrived: UInt32 = 0
  var generation: UInt32 = 0
  /// Words for a barrier no CPU has reached yet (both zero).
  /// - Complexity: O(1).
  public init() {}
}

/// A reusable barrier for a fixed number of CPUs: each `wait` returns once all
/// `parties` have called it. The last to arrive resets the count and opens the next
/// generation with a release store, so everything written before the barrier is seen
/// by every CPU after it.
public struct SpinBarrier: @unchecked Sendable {
  let words: UnsafeMutablePointer<SpinBarrierWords>
  /// CPUs that must arrive.
  public let parties: Int

  /// A barrier for `parties` CPUs over `words`.
  /// - Precondition: `parties >= 1`; nobody waits on `words` yet.
  /// - Complexity: O(1).
  public init(_ words: UnsafeMutablePointer<SpinBarrierWords>, parties: Int) {
    self.words = words
    self.parties = parties
  }

  private var arrivedWord: UnsafeMutablePointer<UInt32> { UnsafeMutableRawPointer(words).assumingMemoryBound(to: UInt32.self) }
  private var generationWord: UnsafeMutablePointer<UInt32> { arrivedWord + 1 }

  /// Waits until all parties have arrived.
  /// - Complexity: O(1) plus the wait for the last CPU.
  public func wait() { wait(whileWaiting: {}) }

  /// Waits until all parties have arrived, calling `work` again and again meanwhile
  /// (a CPU that must keep serving others while it waits, like emptying a queue that
  /// other CPUs still fill). `work` must not wait on this barrier.
  /// - Complexity: O(1) plus the wait for the last CPU and the calls of `work`.
  public func wait(whileWaiting work: () -> Void) {
    let generation = ks_load_acquire(generationWord)
    if Int(ks_fetch_increment(arrivedWord)) + 1 == parties {
      ks_store_relaxed(arrivedWord, 0)
      ks_store_release(generationWord, generation &+ 1)
      return
    }
    while ks_load_acquire(generationWord) == generation {
      work()
      ks_spin_hint()
    }
  }
}
