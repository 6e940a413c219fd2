/// The metadata for one 4 KiB physical page: 16 bytes, so 1 GiB of RAM costs 4 MiB.
///
/// `word` packs the mapped virtual page number (40 bits; 0 means "the direct map", i.e.
/// physical + the allocator's offset, which is the identity in the kernel), the owner,
/// the buddy order and the flags. `next` and `prev` depend on the page's state:
///
/// | page | `next` | `prev` |
/// |---|---|---|
/// | head of a free block | next free block (page index) | previous free block |
/// | head of an allocated run | the owner's tag (the heap's id, a slab cache's class) | pages in the run |
/// | other page of an allocated run | index of the run's head | pages in the run |
/// | reserved page | `none` | 0 |
///
/// So the owner of any address, and the run it belongs to, take one or two loads.
public struct PageEntry: Sendable {
  /// "No page" in a free-list link.
  public static let none: UInt32 = .max
  /// The order of a run whose page count is not a power of two (`allocContiguous`).
  public static let noOrder = 0xFF

  /// This page is the first of a block: a free block on the free lists, or an allocated run.
  public static let flagBlockHead: UInt8 = 0x01
  /// A free order-0 page waiting in the allocator's hot-page cache (not merged yet).
  public static let flagHot: UInt8 = 0x02

  /// By the page's state (the table above): the next free block's index, the owner's
  /// tag, the run head's index, or `none`.
  public var next: UInt32
  /// By the page's state (the table above): the previous free block's index, the run's
  /// page count, or 0.
  public var prev: UInt32
  @usableFromInline var word: UInt64

  private static let virtualPageMask: UInt64 = (1 << 40) - 1
  @usableFromInline static let ownerShift: UInt64 = 40
  private static let orderShift: UInt64 = 48
  @usableFromInline static let flagsShift: UInt64 = 56
  /// The flag bits of the word.
  static let flagsMask: UInt64 = 0xFF << flagsShift

  @usableFromInline
  init(next: UInt32, prev: UInt32, word: UInt64) {
    self.next = next
    self.prev = prev
    self.word = word
  }

  @inlinable @inline(__always)
  func field(_ shift: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: word >> shift) }
  private mutating func setField(_ shift: UInt64, _ value: UInt8) {
    word = (word & ~(0xFF << shift)) | (UInt64(value) << shift)
  }

  /// The packed word of a page owned by `owner`: a run head with `order` when `head`.
  /// The word of a free page in a CPU's hot cache: owner free, `flagHot`, no head.
  static let hotWord: UInt64 = UInt64(flagHot) << flagsShift

  @inline(__always)
  static func ownedWord(_ owner: PageOwner, order: Int, head: Bool) -> UInt64 {
    let ownerBits = UInt64(owner.rawValue) << ownerShift
    guard head else { return ownerBits }
    return ownerBits | UInt64(UInt8(truncatingIfNeeded: order)) << orderShift | UInt64(flagBlockHead) << flagsShift
  }

  /// The order field of a run of `pages` pages: its buddy order for a power of two,
  /// `noOrder` for any other length.
  @inline(__always)
  static func runOrder(pages: Int) -> Int { pages & (pages - 1) == 0 ? pages.trailingZeroBitCount : noOrder }

  /// The order field of a packed word.
  @inline(__always)
  static func order(ofWord word: UInt64) -> Int { Int(UInt8(truncatingIfNeeded: word >> orderShift)) }

  /// `word` with its order field set to `order`.
  @inline(__always)
  static func word(_ word: UInt64, withOrder order: Int) -> UInt64 {
    (word & ~(0xFF << orderShift)) | UInt64(UInt8(truncatingIfNeeded: order)) << orderShift
  }

  /// Who uses the page (an unknown byte reads as `.mmio`, which nothing frees).
  public var owner: PageOwner {
    get { PageOwner(rawValue: field(PageEntry.ownerShift)) ?? .mmio }
    set { setField(PageEntry.ownerShift, newValue.rawValue) }
  }

  /// Buddy order of the block this page heads (meaningful with `flagBlockHead`);
  /// `noOrder` for a run whose length is not a power of two.
  public var order: Int {
    get { Int(field(PageEntry.orderShift)) }
    set { setField(PageEntry.orderShift, UInt8(truncatingIfNeeded: newValue)) }
  }

  /// `flagBlockHead` and `flagHot`.
  public var flags: UInt8 {
    @inlinable @inline(__always) get { field(PageEntry.flagsShift) }
    set { setField(PageEntry.flagsShift, newValue) }
  }

  /// Whether the page heads a block.
  @inlinable public var isBlockHead: Bool { flags & 1 != 0 }  // flagBlockHead, as a literal for inlining

  /// The owner's raw byte, without decoding it (fast paths compare it).
  @inlinable public var ownerRawValue: UInt8 { field(PageEntry.ownerShift) }

  /// The page is allocated when anything but the free lists owns it.
  public var isAllocated: Bool { owner != .free }

  /// Explicit virtual page number, or 0 for the direct map.
  public var virtualPageNumber: UInt64 {
    get { word & PageEntry.virtualPageMask }
    set { word = (word & ~PageEntry.virtualPageMask) | (newValue & PageEntry.virtualPageMask) }
  }
}
