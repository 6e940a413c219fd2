/// Why a heap call was refused. Nothing in the heap changes when one is thrown.
public struct HeapError: Error, Equatable, Sendable {
  public enum Reason: UInt8, Sendable {
    /// The pointer is not 16-byte aligned (checked first).
    case misaligned
    /// The pointer is not inside any arena of this heap.
    case outsideHeap
    /// The header's check value is wrong: not the start of a block (an interior
    /// pointer), or the header was overwritten.
    case corruptHeader
    /// The block is already free.
    case doubleFree
    /// The header looks valid but its right neighbour disagrees with it (corruption
    /// or a forged header).
    case corruptNeighbour

    /// The reason as printed in the kernel's panic line.
    public var text: StaticString {
      switch self {
      case .misaligned: return "misaligned pointer"
      case .outsideHeap: return "pointer outside the heap"
      case .corruptHeader: return "bad header (interior pointer or overwritten header)"
      case .doubleFree: return "double free"
      case .corruptNeighbour: return "neighbouring header disagrees (heap corrupted)"
      }
    }
  }

  public let reason: Reason
  /// The pointer passed in (as an address).
  public let address: UInt

  /// An error for `reason` at `address`.
  /// - Complexity: O(1).
  public init(_ reason: Reason, _ address: UInt) {
    self.reason = reason
    self.address = address
  }
}

/// A broken heap invariant found by `Heap.check()`.
public struct HeapCheckFailure: Error, Sendable {
  public let reason: StaticString
  public let address: UInt
}
