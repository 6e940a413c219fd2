import KernelSyncAtomics

/// A `State` and the `SpinLock` that guards it, laid out together in memory the handle
/// does not own (the allocators keep their state in the memory they manage): Rust's
/// `Mutex<T>`, talc's `Talck`, Zircon's `TA_GUARDED` member. The state is reachable only
/// while the lock is held:
/// - `withLock` runs a closure on `inout State` and releases the lock when it returns;
/// - `withLocked(count:...)` holds several at once, in the order given (walks);
/// - `withHeld` reaches the state of a lock the calling CPU holds already (inside such
///   a walk), checked against the lock's owner.
/// Functions that need the lock held take `inout State` as their parameter, so a caller
/// without the lock has nothing to pass them.
///
/// Layout: the lock word, then `State` at `stateOffset` (its alignment, at least 8).
/// A handle: copies are the same lock and the same state.
///
/// `snapshot` reads the state without the lock, for fields the holder writes with
/// relaxed atomic stores (counters read by statistics); nothing else may use it.
public struct SpinLocked<State>: @unchecked Sendable {
  @usableFromInline let base: UnsafeMutableRawPointer

  /// Bytes from the lock word to the state.
  @inlinable
  public static var stateOffset: Int { max(8, MemoryLayout<State>.alignment) }
  /// Bytes the lock and the state take.
  @inlinable
  public static var byteCount: Int { stateOffset + MemoryLayout<State>.stride }
  /// The alignment `memory` must have.
  @inlinable
  public static var alignment: Int { max(8, MemoryLayout<State>.alignment) }

  /// Lays a free lock and `state` out at `memory` (`byteCount` bytes, `alignment`).
  /// - Precondition: nobody uses `memory` as a lock yet.
  /// - Complexity: O(1).
  @inlinable
  public init(initializing memory: UnsafeMutableRawPointer, to state: State) {
    base = memory
    memory.bindMemory(to: UInt32.self, capacity: 1).initialize(to: 0)
    (memory + SpinLocked.stateOffset).bindMemory(to: State.self, capacity: 1).initialize(to: state)
  }

  /// The lock and state `init(initializing:to:)` laid out at `memory` earlier.
  /// - Complexity: O(1).
  @inlinable @inline(__always)
  public init(at memory: UnsafeMutableRawPointer) { base = memory }

  /// The address of the lock word: the handle's identity (and what `init(at:)` takes).
  @inlinable @inline(__always)
  public var address: UnsafeMutableRawPointer { base }

  @inlinable @inline(__always)
  var lock: SpinLock { SpinLock(base.assumingMemoryBound(to: UInt32.self)) }

  @inlinable @inline(__always)
  var state: UnsafeMutablePointer<State> { (base + SpinLocked.stateOffset).assumingMemoryBound(to: State.self) }

  /// Runs `body` on the state with the lock held by `cpu`, then releases it.
  /// - Returns: `body`'s result; nil when `cpu` holds the lock already (re-entry from an
  ///   interrupt handler, say): nothing runs then, and nothing changes.
  /// - Throws: what `body` throws (the lock is released first).
  /// - Complexity: O(1) plus the wait for the lock and `body`.
  @inlinable @inline(__always)
  public func withLock<R, E: Error>(cpu: Int, _ body: (inout State) throws(E) -> R) throws(E) -> R? {
    guard lock.lock(cpu: cpu) == nil else { return nil }
    defer { lock.release() }
    return try body(&state.pointee)
  }

  /// Runs `body` on the state with the lock held by `cpu` when the lock is free at the
  /// first look, then releases it; nil (nothing run) when anyone holds it, `cpu`
  /// included. For a fast path that never waits or calls: a caller that gets nil takes
  /// its general path, with `withLock`.
  /// - Complexity: O(1) plus `body`.
  @inlinable @inline(__always)
  public func withLockIfFree<R>(cpu: Int, _ body: (inout State) -> R) -> R? {
    guard ks_try_acquire(base.assumingMemoryBound(to: UInt32.self), UInt32(truncatingIfNeeded: cpu) &+ 1) == 0 else { return nil }
    defer { lock.release() }
    return body(&state.pointee)
  }

  /// Runs `body` on the state of a lock that `cpu` holds already (taken by an enclosing
  /// `withLock` or `withLocked`).
  /// - Returns: `body`'s result; nil when `cpu` does not hold the lock (nothing runs).
  /// - Complexity: O(1) plus `body`.
  @inlinable @inline(__always)
  public func withHeld<R>(cpu: Int, _ body: (inout State) -> R) -> R? {
    guard lock.holder == cpu else { return nil }
    return body(&state.pointee)
  }

  /// Runs `body` with the locks `lockAt(0)`, `lockAt(1)`, ... `lockAt(count - 1)` all
  /// held, taken in that order and released in reverse. A lock already held by `cpu`
  /// stops the attempt: the ones taken are released and nil is returned.
  /// Inside `body`, `withHeld` reaches each of their states.
  /// - Precondition: the order is the project's lock order; no lock appears twice.
  /// - Complexity: O(count) plus the waits and `body`.
  @inlinable
  public static func withLocked<R>(count: Int, cpu: Int, _ lockAt: (Int) -> SpinLocked<State>, _ body: () -> R) -> R? {
    var taken = 0
    defer { for index in stride(from: taken - 1, through: 0, by: -1) { lockAt(index).lock.release() } }
    while taken < count {
      guard lockAt(taken).lock.lock(cpu: cpu) == nil else { return nil }
      taken += 1
    }
    return body()
  }

  /// Takes the lock and keeps it after the call returns, for a holder whose critical
  /// section cannot be one closure: a fork handler takes every allocator lock in its
  /// prepare callback and releases them in the parent's and the child's. Everything
  /// else uses `withLock`.
  /// - Returns: false when `cpu` holds it already (nothing taken).
  /// - Complexity: O(1) plus the wait.
  public func acquireAcrossCalls(cpu: Int) -> Bool { lock.lock(cpu: cpu) == nil }

  /// Releases a lock `acquireAcrossCalls` took.
  /// - Returns: false when `cpu` does not hold it (nothing released).
  /// - Complexity: O(1).
  @discardableResult
  public func releaseAcrossCalls(cpu: Int) -> Bool { lock.unlock(cpu: cpu) == nil }

  /// The state read without the lock: for fields the holder writes with relaxed atomic
  /// stores (`ks_store_relaxed32` and friends), read with relaxed atomic loads.
  /// - Complexity: O(1).
  @inlinable @inline(__always)
  public var snapshot: UnsafePointer<State> { UnsafePointer(state) }

  /// The CPU holding the lock, or nil (a racy read, for reports and tests).
  /// - Complexity: O(1).
  public var holder: Int? { lock.holder }
}
