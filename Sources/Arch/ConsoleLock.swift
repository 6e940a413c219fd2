// The console lock: whole lines from different cores, never interleaved characters.
#if os(none)
import ArchSupport
import KernelSync

/// The console lock, in ArchSupport's static storage (zeroed: free). It guards no data
/// of its own, only the order of whole lines on the UART.
private var consoleLock: TicketLocked<Void> { TicketLocked(at: arch_console_lock_storage()) }

/// Runs `body`, which prints one or more whole lines, while holding the console lock, so
/// that lines printed by other cores at the same time come before or after them, whole.
/// Output without the lock (kput outside `withConsoleLock`, exception reports, panics)
/// is not held back and may still land inside a locked line.
///
/// Preconditions: the per-CPU register points at the calling core's block (true from boot.S on).
/// A `body` that calls `withConsoleLock` again prints without waiting (the lock refuses
/// the recursive acquire) instead of deadlocking.
/// - Complexity: O(1) plus the wait for the cores ahead plus `body`.
public func withConsoleLock(_ body: () -> Void) {
  if consoleLock.withLock(cpu: CPU.current, { _ in body() }) == nil { body() }
}

#endif
