/// Why a page-frame operation was refused. The structures are untouched when one is thrown.
public typealias PageFrameError = MemoryError<PageFrameFailure>

/// The defined outcomes for bad input to the page allocator, in the order they are checked.
public enum PageFrameFailure: UInt8, FailureReason {
  /// The address is not a multiple of 4 KiB (checked first).
  case misaligned
  /// The address lies outside the RAM the allocator manages.
  case outsideRAM
  /// The order is above `Page.maxOrder`, or the page count is not positive.
  case badOrder
  /// The page is already free (double free).
  case notAllocated
  /// The page belongs to the firmware, kernel, page array, DTB or MMIO.
  case reserved
  /// The page belongs to another allocator (the heap, a slab, page tables) than the
  /// one freeing it.
  case wrongOwner
  /// The page is allocated but is not the start of a run of that size.
  case notRunStart
  /// Set-up over a page that is already free or allocated: `release` of a range
  /// released before, `reserve` after `release`.
  case alreadyReleased
  /// The allocator was entered again on a CPU that is inside it already (an interrupt
  /// handler that frees while its CPU holds the allocator's lock); refused instead of
  /// deadlocking. Allocations get nil for the same reason.
  case reentered

  public var text: StaticString {
    switch self {
    case .misaligned: return "misaligned address"
    case .outsideRAM: return "address outside RAM"
    case .badOrder: return "order or page count out of range"
    case .notAllocated: return "page not allocated (double free)"
    case .reserved: return "reserved page"
    case .wrongOwner: return "page owned by another allocator (heap, slab or page tables)"
    case .notRunStart: return "not the start of a run of that size"
    case .alreadyReleased: return "page already released or allocated"
    case .reentered: return "allocator re-entered on this CPU (lock held)"
    }
  }
}
