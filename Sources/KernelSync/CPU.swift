import KernelSyncAtomics

/// The calling CPU, as the allocators' per-CPU caches and the locks' debug checks see it.
///
/// On the kernel it is the core number (0 ..< cores), kept by the architecture code in
/// the per-CPU block TPIDR_EL1 points to. On hosted builds (tests, the preload library)
/// every thread gets its own number the first time it asks, so two threads never share
/// one; they may share a per-CPU `slot`, which the slot's lock makes safe.
public enum CPU {
  /// Per-CPU slots every per-CPU structure has: the boards have 4 cores, host tests run
  /// up to 8 threads. A power of two.
  public static let maximum = 8

  /// The calling CPU's number (unique among running CPUs and threads).
  /// - Complexity: O(1): a register and one load on the kernel, a thread-local on hosts.
  @inlinable @inline(__always)
  public static var current: Int { Int(ks_current_cpu()) }

  /// The per-CPU slot of CPU `cpu`: `cpu` modulo `maximum`.
  /// - Complexity: O(1).
  @inlinable @inline(__always)
  public static func slot(_ cpu: Int) -> Int { cpu & (maximum - 1) }

  /// The hint for one turn of a wait loop: `yield` on AArch64, `pause` on x86, and on
  /// hosted builds the thread gives up its time slice (the awaited thread may be
  /// descheduled on the same core).
  /// - Complexity: O(1).
  @inlinable @inline(__always)
  public static func relax() { ks_spin_hint() }

  #if !hasFeature(Embedded)
  /// Host tests only: makes the calling thread CPU `cpu` from now on. Two live threads
  /// must not be given the same number.
  /// - Complexity: O(1).
  public static func bind(_ cpu: Int) { ks_bind_cpu(UInt32(cpu)) }
  #endif
}
