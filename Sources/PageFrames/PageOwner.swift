/// What a physical page is used for. Stored in one byte of its `PageEntry`.
public enum PageOwner: UInt8, CaseIterable, Sendable {
  /// On the page allocator's free lists.
  case free = 0
  /// Handed out by `allocPage` / `allocPages`.
  case allocated = 1
  /// Firmware and low memory below the kernel image.
  case firmware = 2
  /// The kernel image, `[__kernel_start, __end)`.
  case kernel = 3
  /// The page metadata array itself.
  case metadata = 4
  /// Kernel heap pages: the initial 1 MiB and any growth.
  case heap = 5
  /// The flattened device tree blob.
  case deviceTree = 6
  /// Memory-mapped I/O that lies inside the RAM range.
  case mmio = 7

  /// Number of owner kinds, for per-kind counters.
  public static let kindCount = 8

  /// Pages of this kind may never be returned with `freePage`.
  public var isReserved: Bool { self != .free && self != .allocated }

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
    }
  }
}
