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
  /// The block or slab object is already free, or the pointer lies in a free page (a
  /// large allocation, slab or arena the heap gave back).
  case doubleFree
  /// The header looks valid but its right neighbour disagrees with it (corruption
  /// or a forged header).
  case corruptNeighbour
  /// The pointer lies inside a large (page-run) allocation or a slab, but not at the
  /// start of the allocation or of an object.
  case interiorPointer
  /// A slab object freed through the wrong door: an `ObjectCache` object passed to
  /// kfree, a kmalloc object or another cache's object passed to `ObjectCache.free`.
  case wrongCache
  /// A slab's header fails its check value: overwritten, or not a slab of this heap.
  case corruptSlab
  /// A free slab object's free-list link was overwritten (a write after free): found
  /// when the object before it is allocated; the list is cut there.
  case freeListCorrupted
  /// `ObjectCache.destroy` while objects are live.
  case cacheInUse
  /// The `ObjectCache` handle names a destroyed cache (or was never one).
  case cacheDestroyed
  /// The heap was entered again on a CPU that is inside it already (an interrupt
  /// handler while its CPU holds a heap or cache lock); refused instead of deadlocking.
  case reentered

  public var text: StaticString {
    switch self {
    case .misaligned: return "misaligned pointer"
    case .outsideHeap: return "pointer outside the heap"
    case .corruptHeader: return "bad header (interior pointer or overwritten header)"
    case .doubleFree: return "double free"
    case .corruptNeighbour: return "neighbouring header disagrees (heap corrupted)"
    case .interiorPointer: return "pointer inside an allocation, not at its start"
    case .wrongCache: return "object of another cache"
    case .corruptSlab: return "slab header overwritten"
    case .freeListCorrupted: return "free-list link overwritten (write after free)"
    case .cacheInUse: return "cache still has live objects"
    case .cacheDestroyed: return "cache destroyed"
    case .reentered: return "heap re-entered on this CPU (lock held)"
    }
  }
}

/// A broken heap invariant found by `Heap.check()`.
public struct HeapCheckFailure: Error, Sendable {
  /// Which invariant is broken, in words.
  public let reason: StaticString
  /// Where: the address of the block or slab the check stopped at (0 when none is to blame).
  public let address: UInt

  /// A failure for `reason` at `address`.
  /// - Complexity: O(1).
  public init(reason: StaticString, address: UInt) {
    self.reason = reason
    self.address = address
  }
}
