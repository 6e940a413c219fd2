/// How a CPU masks its interrupts: the kernel's `Platform` masks DAIF on AArch64, host
/// tests record what happened. Static, so a lock needs no stored callback.
public protocol InterruptMasking {
  /// Masks interrupts on this CPU and returns the previous mask, for `restore`.
  static func save() -> UInt
  /// Puts back a mask `save` returned.
  static func restore(_ saved: UInt)
}

/// A ticket lock that masks interrupts while it is held, so an interrupt handler on the
/// same CPU can never spin on a lock its own CPU holds (Linux's spin_lock_irqsave).
/// The saved mask is returned by `lock` and given back to `unlock`, so nested locks
/// restore in the right order.
public struct IRQSavingLock<Mask: InterruptMasking>: @unchecked Sendable {
  public let lock: TicketLock

  /// The lock over `words`.
  /// - Complexity: O(1).
  public init(_ words: UnsafeMutablePointer<TicketLockWords>) { lock = TicketLock(words) }

  /// Masks interrupts, then takes the lock.
  /// - Returns: the mask to give to `unlock`, or the error (interrupts restored, nothing taken).
  /// - Complexity: as `TicketLock.lock`.
  public func lock(cpu: Int) -> Result<UInt, LockError> {
    let saved = Mask.save()
    if let error = lock.lock(cpu: cpu) {
      Mask.restore(saved)
      return .failure(error)
    }
    return .success(saved)
  }

  /// Releases the lock, then restores the interrupt mask `lock` returned.
  /// - Returns: nil, or `notOwner` (nothing released, the mask untouched).
  /// - Complexity: O(1).
  @discardableResult
  public func unlock(cpu: Int, restoring saved: UInt) -> LockError? {
    if let error = lock.unlock(cpu: cpu) { return error }
    Mask.restore(saved)
    return nil
  }
}
