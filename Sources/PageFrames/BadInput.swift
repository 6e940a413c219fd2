/// A refused call: which function, why, and the address involved. The kernel prints it
/// as "function: reason address" and stops; host tests record it.
public struct BadInputReport: Sendable {
  /// The refusing function's name, as the report line starts.
  public let function: StaticString
  /// Why it refused (the error reason's text).
  public let reason: StaticString
  /// The pointer or physical address it was given (for a bad order or page count, that
  /// number).
  public let address: UInt

  /// A report of `function` refusing `address` for `reason`.
  /// - Complexity: O(1).
  public init(function: StaticString, reason: StaticString, address: UInt) {
    self.function = function
    self.reason = reason
    self.address = address
  }
}

/// Where the kernel-wide entry points (`freePage`, `kfree`, ...) send bad input. The kernel
/// installs a handler that panics; the default does nothing, so a refused call simply
/// returns with the structures intact. Set it before the first allocation.
nonisolated(unsafe) public var badInputHandler: (BadInputReport) -> Void = { _ in }
