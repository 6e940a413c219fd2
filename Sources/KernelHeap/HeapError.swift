import PageFrames

/// Why a heap call was refused. Nothing in the heap changes when one is thrown.
public typealias HeapError = MemoryError<HeapFailure>

/// The defined outcomes for bad input to the heap, in the order they are checked.
public enum HeapFailure: UInt8, FailureReason {
  /// The pointer is not 16-byte aligned (checked first).
  case misaligned
  /// The pointer is in no arena and no large allocation of this heap: memory the heap
  /// does not own (another allocator's page, a reserved page, outside RAM, the control
  /// block or an arena's record).
  case outsideHeap
  /// The header's check value is wrong: not the start of a block (an interior
  /// pointer), or the header was overwritten.
  case corruptHeader
  /// The block is already free; for a large allocation, its first page is free again.
  case doubleFree
  /// The header looks valid but its right neighbour disagrees with it (corruption
  /// or a forged header).
  case corruptNeighbour
  /// The pointer lies inside a large (page-run) allocation but not at its start.
  case interiorPointer

  public var text: StaticString {
    switch self {
    case .misaligned: return "misaligned pointer"
    case .outsideHeap: return "pointer outside the heap"
    case .corruptHeader: return "bad header (interior pointer or overwritten header)"
    case .doubleFree: return "double free"
    case .corruptNeighbour: return "neighbouring header disagrees (heap corrupted)"
    case .interiorPointer: return "pointer inside a large allocation, not at its start"
    }
  }
}

/// A broken heap invariant found by `Heap.check()`.
public struct HeapCheckFailure: Error, Sendable {
  public let reason: StaticString
  public let address: UInt

  /// A failure for `reason` at `address`.
  /// - Complexity: O(1).
  public init(reason: StaticString, address: UInt) {
    self.reason = reason
    self.address = address
  }
}
