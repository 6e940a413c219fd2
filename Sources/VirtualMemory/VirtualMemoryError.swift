import PageFrames

/// Why an address-space or vmalloc operation was refused. Nothing changes when one is
/// thrown, except where a reason says so.
public typealias VirtualMemoryError = MemoryError<VirtualMemoryFailure>

/// The defined outcomes for bad input to `AddressSpace` and `vmalloc`.
public enum VirtualMemoryFailure: UInt8, FailureReason {
  /// A virtual or physical address that is not a multiple of 4 KiB.
  case misaligned
  /// A page count that is not positive, or a size of 0.
  case badCount
  /// The range runs past the addresses the tables translate (or wraps).
  case outOfRange
  /// Attributes without `.read`, writable and executable at once, or executable device.
  case badAttributes
  /// `map` over a page that is mapped already (the address is the first one).
  case alreadyMapped
  /// `protect` over a page that is not mapped (the address is the first one).
  case notMapped
  /// No page frame for a table, a vmalloc page or the area list; or no room left in the
  /// vmalloc range.
  case outOfMemory
  /// The address space's lock is held by this CPU already (an exception handler that
  /// maps while its CPU is inside `map`): refused instead of deadlocking.
  case reentered
  /// `vfree` of an address that is not the start of a vmalloc area.
  case notVmallocArea

  public var text: StaticString {
    switch self {
    case .misaligned: return "misaligned address"
    case .badCount: return "page count or size not positive"
    case .outOfRange: return "range outside the translated address space"
    case .badAttributes: return "attributes not readable, or writable and executable"
    case .alreadyMapped: return "page already mapped"
    case .notMapped: return "page not mapped"
    case .outOfMemory: return "out of page frames or virtual space"
    case .reentered: return "address space re-entered on this CPU (lock held)"
    case .notVmallocArea: return "not the start of a vmalloc area"
    }
  }
}
