/// A `State` guarded by a `TicketLock` (fair: CPUs are served in arrival order), laid
/// out together in memory the handle does not own, like `SpinLocked`. For locks every
/// waiter of which is running (the console); the allocators use `SpinLocked` (see
/// `SpinLock` for why). The state is reachable only through `withLock`.
///
/// Layout: the lock's 12 bytes, then `State` at `stateOffset`. Zeroed memory is a free
/// lock, so a `Void` state needs no set-up (`init(at:)` over zeroed static storage).
public struct TicketLocked<State>: @unchecked Sendable {
  let base: UnsafeMutableRawPointer

  /// Bytes from the lock to the state.
  public static var stateOffset: Int { max(16, MemoryLayout<State>.alignment) }
  /// Bytes the lock and the state take.
  public static var byteCount: Int { stateOffset + MemoryLayout<State>.stride }

  /// Lays a free lock and `state` out at `memory` (`byteCount` bytes, 16-aligned).
  /// - Precondition: nobody uses `memory` as a lock yet.
  /// - Complexity: O(1).
  public init(initializing memory: UnsafeMutableRawPointer, to state: State) {
    base = memory
    memory.bindMemory(to: TicketLockWords.self, capacity: 1).initialize(to: TicketLockWords())
    (memory + TicketLocked.stateOffset).bindMemory(to: State.self, capacity: 1).initialize(to: state)
  }

  /// The lock and state laid out at `memory` before (or zeroed memory, for `Void`).
  /// - Complexity: O(1).
  public init(at memory: UnsafeMutableRawPointer) { base = memory }

  var lock: TicketLock { TicketLock(base.assumingMemoryBound(to: TicketLockWords.self)) }

  /// Runs `body` on the state with the lock held by `cpu`, then releases it.
  /// - Returns: `body`'s result; nil when `cpu` holds the lock already (nothing runs).
  /// - Complexity: O(1) plus the wait for the CPUs ahead and `body`.
  public func withLock<R>(cpu: Int, _ body: (inout State) -> R) -> R? {
    guard lock.lock(cpu: cpu) == nil else { return nil }
    defer { lock.unlock(cpu: cpu) }
    return body(&(base + TicketLocked.stateOffset).assumingMemoryBound(to: State.self).pointee)
  }

  /// The CPU holding the lock, or nil (a racy read, for reports and tests).
  /// - Complexity: O(1).
  public var holder: Int? { lock.holder }
}
