/// Geometry of a physical page.
public enum Page {
  /// Bytes in a page.
  public static let size = 4096
  /// log2(size).
  public static let shift = 12
  /// Largest buddy order: runs of up to 2^maxOrder pages (4 MiB).
  public static let maxOrder = 10
  /// Number of orders, 0 through maxOrder.
  public static let orderCount = maxOrder + 1
}

/// The metadata for one 4 KiB physical page: 16 bytes, so 1 GiB of RAM costs 4 MiB.
///
/// `next`/`prev` link free blocks (page indices, `PageEntry.none` for no link). `word`
/// packs the mapped virtual page number (40 bits; 0 means "the direct map", i.e.
/// physical + the allocator's offset, which is the identity in the kernel), the owner,
/// the buddy order and the flags.
public struct PageEntry: Sendable {
  /// "No page" in a free-list link.
  public static let none: UInt32 = .max

  /// This page is the first of a block: a free block on the free lists, or an allocated run.
  public static let flagBlockHead: UInt8 = 1 << 0
  /// A free order-0 page waiting in the allocator's hot-page cache (not merged yet).
  public static let flagHot: UInt8 = 1 << 1

  public var next: UInt32
  public var prev: UInt32
  var word: UInt64

  private static let virtualPageMask: UInt64 = (1 << 40) - 1
  private static let ownerShift: UInt64 = 40
  private static let orderShift: UInt64 = 48
  private static let flagsShift: UInt64 = 56

  private func field(_ shift: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: word >> shift) }
  private mutating func setField(_ shift: UInt64, _ value: UInt8) {
    word = (word & ~(0xFF << shift)) | (UInt64(value) << shift)
  }

  /// The packed word of a run head: `owner`, `order`, `flagBlockHead`, direct-mapped.
  @inline(__always)
  static func headWord(owner: PageOwner, order: Int) -> UInt64 {
    UInt64(owner.rawValue) << ownerShift | UInt64(UInt8(truncatingIfNeeded: order)) << orderShift
      | UInt64(flagBlockHead) << flagsShift
  }

  /// Who uses the page.
  public var owner: PageOwner {
    get { PageOwner(rawValue: field(PageEntry.ownerShift) & 7) ?? .free }
    set { setField(PageEntry.ownerShift, newValue.rawValue) }
  }

  /// Buddy order of the block this page heads (meaningful with `flagBlockHead`).
  public var order: Int {
    get { Int(field(PageEntry.orderShift)) }
    set { setField(PageEntry.orderShift, UInt8(truncatingIfNeeded: newValue)) }
  }

  /// `flagBlockHead` and future flags.
  public var flags: UInt8 {
    get { field(PageEntry.flagsShift) }
    set { setField(PageEntry.flagsShift, newValue) }
  }

  /// Whether the page heads a block.
  public var isBlockHead: Bool { flags & PageEntry.flagBlockHead != 0 }

  /// The page is allocated when anything but the free lists owns it.
  public var isAllocated: Bool { owner != .free }

  /// Explicit virtual page number, or 0 for the direct map.
  public var virtualPageNumber: UInt64 {
    get { word & PageEntry.virtualPageMask }
    set { word = (word & ~PageEntry.virtualPageMask) | (newValue & PageEntry.virtualPageMask) }
  }
}
