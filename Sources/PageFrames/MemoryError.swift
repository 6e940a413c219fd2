/// A reason for refusing bad input: a closed set of cases, each with the text the
/// kernel prints.
public protocol FailureReason: Sendable, Equatable {
  /// The reason as printed in the kernel's report line.
  var text: StaticString { get }
}

/// Why a memory operation was refused, and the address it was given. One pattern for
/// the page frames (`PageFrameError`), the heap (`HeapError`) and memInit
/// (`MemInitError`). The structures are untouched when one is thrown.
public struct MemoryError<R: FailureReason>: Error, Equatable, Sendable {
  /// The closed set of reasons of this kind of error.
  public typealias Reason = R
  /// Why the operation was refused.
  public let reason: Reason
  /// The address that was refused (the pointer or physical address passed in).
  public let address: UInt
  /// Bytes the refused operation needed, where a size was short (memInit's
  /// `ramTooSmall` and `reservationsFillRAM`); 0 otherwise.
  public let needed: UInt
  /// Bytes that were there for it (the largest free stretch of RAM), next to `needed`;
  /// 0 otherwise.
  public let available: UInt

  /// An error for `reason` at `address`; `needed` and `available` name the sizes of a
  /// shortfall (0 when there is none).
  /// - Complexity: O(1).
  public init(_ reason: Reason, _ address: UInt, needed: UInt = 0, available: UInt = 0) {
    self.reason = reason
    self.address = address
    self.needed = needed
    self.available = available
  }

  /// This error as the report `function` sends to `badInputHandler`.
  /// - Complexity: O(1).
  public func report(_ function: StaticString) -> BadInputReport {
    BadInputReport(function: function, reason: reason.text, address: address)
  }
}
