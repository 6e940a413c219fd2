/// How a CPU masks its interrupts: the kernel's platform masks them with its
/// architecture's interrupt mask, host tests record what happened. Static, so a lock needs no stored callback.
public protocol InterruptMasking {
  /// Masks interrupts on this CPU and returns the previous mask, for `restore`.
  static func save() -> UInt
  /// Puts back a mask `save` returned.
  static func restore(_ saved: UInt)
}

/// A `SpinLocked` state whose lock masks interrupts while it is held, so an interrupt
/// handler on the same CPU can never spin on a lock its own CPU holds (Linux's
/// spin_lock_irqsave). Each `withLock` restores the mask it found, so nested locks
/// restore in the right order.
public struct IRQSavingLocked<State, Mask: InterruptMasking>: @unchecked Sendable {
  /// The spin lock and state underneath. Its own `withLock` leaves interrupts as they
  /// are; its `holder` and `snapshot` are for diagnostics.
  public let locked: SpinLocked<State>

  /// Lays a free lock and `state` out at `memory` (`SpinLocked<State>.byteCount` bytes).
  /// - Complexity: O(1).
  public init(initializing memory: UnsafeMutableRawPointer, to state: State) {
    locked = SpinLocked(initializing: memory, to: state)
  }

  /// Masks interrupts, takes the lock, runs `body`, releases, restores the mask.
  /// - Returns: `body`'s result; nil when `cpu` holds the lock already (interrupts
  ///   restored, nothing runs).
  /// - Complexity: as `SpinLocked.withLock`.
  public func withLock<R>(cpu: Int, _ body: (inout State) -> R) -> R? {
    let saved = Mask.save()
    defer { Mask.restore(saved) }
    return locked.withLock(cpu: cpu, body)
  }
}
