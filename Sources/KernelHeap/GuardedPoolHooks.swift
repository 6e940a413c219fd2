/// What a `GuardedPool` needs from the system it runs on: page protection, stack capture
/// and a place to print. The kernel passes page-table operations, a frame-pointer walk
/// and the console; the preload library `mprotect`, `backtrace` and stderr. Each hook
/// gets `context` back (a test passes its recorder there, no globals).
public struct GuardedPoolHooks {
  /// Passed back to every hook.
  public var context: UnsafeMutableRawPointer?
  /// Makes the page at `address` (one of the pool's object pages) readable and writable
  /// (`accessible`) or faulting on every access. Returns false when it could not.
  public var setAccessible: @convention(c) (UnsafeMutableRawPointer?, UInt, Bool) -> Bool
  /// Writes up to `capacity` return addresses of the calling stack into the buffer,
  /// innermost first, and returns how many it wrote (0 when it cannot walk the stack).
  public var captureStack: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt>, Int) -> Int
  /// Writes `count` bytes of report text.
  public var write: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>, Int) -> Void
  /// Called after a report of a bug: the kernel exits with status 4, the preload library
  /// aborts. If it returns (host tests), the pool goes on with its structures unchanged
  /// by the bad call.
  public var fatal: @convention(c) (UnsafeMutableRawPointer?) -> Void

  /// The hooks, with `context` passed back to each.
  /// - Complexity: O(1).
  public init(
    context: UnsafeMutableRawPointer?,
    setAccessible: @convention(c) (UnsafeMutableRawPointer?, UInt, Bool) -> Bool,
    captureStack: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt>, Int) -> Int,
    write: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>, Int) -> Void,
    fatal: @convention(c) (UnsafeMutableRawPointer?) -> Void
  ) {
    self.context = context
    self.setAccessible = setAccessible
    self.captureStack = captureStack
    self.write = write
    self.fatal = fatal
  }
}
