/// What a physical page is used for. Stored in one byte of its `PageEntry`; the page
/// entry is the source of truth for who owns an address.
public enum PageOwner: UInt8, CaseIterable, Sendable {
  /// On the page allocator's free lists.
  case free = 0
  /// Handed out by `allocPage` / `allocPages` / `allocContiguous`.
  case allocated = 1
  /// Firmware and low memory below the kernel image.
  case firmware = 2
  /// The kernel image, `[__kernel_start, __end)`.
  case kernel = 3
  /// The page metadata array itself.
  case metadata = 4
  /// A kernel heap arena: the initial 1 MiB (reserved by memInit) or a growth run.
  case heap = 5
  /// The flattened device tree blob.
  case deviceTree = 6
  /// Memory-mapped I/O that lies inside the RAM range.
  case mmio = 7
  /// A large heap allocation served directly as a page run (kmalloc above the threshold).
  case heapLarge = 8
  /// A slab page; the run head's tag names its cache and size class.
  case slab = 9
  /// A page-table page.
  case pageTable = 10
  /// Firmware's own reservations: `/memreserve/` entries and `/reserved-memory` children.
  case firmwareReserved = 11
  /// A `/reserved-memory` child marked `no-map`: not even to be mapped.
  case noMap = 12
  /// The initial ramdisk named in `/chosen`.
  case initrd = 13
  /// A page mapped into a vmalloc area or a kernel stack (virtually contiguous memory
  /// from scattered frames).
  case vmalloc = 14

  /// Number of owner kinds, for per-kind counters.
  public static let kindCount = 15

  /// Set-up reservations: pages of these kinds are never handed out or freed.
  public var isReserved: Bool {
    switch self {
    case .firmware, .kernel, .metadata, .deviceTree, .mmio, .firmwareReserved, .noMap, .initrd: return true
    default: return false
    }
  }

  /// The owners `allocPages` and `allocContiguous` accept: what an allocation can be for.
  public var isAllocatable: Bool {
    switch self {
    case .allocated, .heap, .heapLarge, .slab, .pageTable, .vmalloc: return true
    default: return false
    }
  }

  /// `isAllocatable` of the owner with raw value `raw` (false for an unknown byte),
  /// without decoding it.
  @inlinable @inline(__always)
  public static func isAllocatable(rawValue raw: UInt8) -> Bool {
    let allocatable: UInt32 = 1 << 1 | 1 << 5 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 14
    return raw < 32 && allocatable & 1 << UInt32(raw) != 0
  }

  /// A fixed-width label for memory maps.
  public var label: StaticString {
    switch self {
    case .free: return "free      "
    case .allocated: return "allocated "
    case .firmware: return "firmware  "
    case .kernel: return "kernel    "
    case .metadata: return "page-array"
    case .heap: return "heap      "
    case .deviceTree: return "dtb       "
    case .mmio: return "mmio      "
    case .heapLarge: return "heap-large"
    case .slab: return "slab      "
    case .pageTable: return "page-table"
    case .firmwareReserved: return "reserved  "
    case .noMap: return "no-map    "
    case .initrd: return "initrd    "
    case .vmalloc: return "vmalloc   "
    }
  }
}
