/// Why a page-frame operation was refused. The structures are untouched when one is thrown.
public struct PageFrameError: Error, Equatable, Sendable {
  /// The defined outcomes for bad input, in the order they are checked.
  public enum Reason: UInt8, Sendable {
    /// The address is not a multiple of 4 KiB (checked first).
    case misaligned
    /// The address lies outside the RAM the allocator manages.
    case outsideRAM
    /// The order is above `Page.maxOrder`.
    case badOrder
    /// The page is already free (double free).
    case notAllocated
    /// The page belongs to the firmware, kernel, page array, heap, DTB or MMIO.
    case reserved
    /// The page is allocated but is not the start of a run of that order.
    case notRunStart

    /// The reason as printed in the kernel's panic line.
    public var text: StaticString {
      switch self {
      case .misaligned: return "misaligned address"
      case .outsideRAM: return "address outside RAM"
      case .badOrder: return "order out of range"
      case .notAllocated: return "page not allocated (double free)"
      case .reserved: return "reserved page"
      case .notRunStart: return "not the start of a run of that order"
      }
    }
  }

  public let reason: Reason
  /// The physical address that was passed in.
  public let address: UInt

  /// An error for `reason` at `address`.
  /// - Complexity: O(1).
  public init(_ reason: Reason, _ address: UInt) {
    self.reason = reason
    self.address = address
  }
}
