/// One RAM range of the page-frame allocator: its pages have the consecutive entry
/// indices `[firstIndex, firstIndex + pages)`. Holes between ranges cost no metadata.
/// (The heap's "arenas" are something else: the regions its blocks live in.)
@usableFromInline
struct FrameRange {
  @usableFromInline var base: UInt
  @usableFromInline var end: UInt
  @usableFromInline var firstIndex: Int
  @usableFromInline var pages: Int
  /// `base` as a frame number, for buddy alignment.
  var baseFrame: Int

  /// Frame number minus entry index inside this range: a frame is `index + frameShift`.
  var frameShift: Int { baseFrame - firstIndex }
  /// One past the range's last entry index.
  var limit: Int { firstIndex + pages }

  static let empty = FrameRange(base: 0, end: 0, firstIndex: 0, pages: 0, baseFrame: 0)
}

/// What the allocator knows of its RAM, fixed at set-up and read by every CPU without a
/// lock: the ranges and their entry indices, the direct map, the zero fill. It lives at
/// the start of the metadata region, in front of the per-CPU records.
@usableFromInline
struct FrameLayout {
  /// The first range as the direct map shows it: its first byte's address and its
  /// length (0 without ranges), side by side so that a lookup on a free path loads
  /// them as one pair and needs no physical address.
  @usableFromInline var firstWindowStart: UInt = 0
  @usableFromInline var firstWindowBytes: UInt = 0
  let pageCount: Int
  @usableFromInline let directMapOffset: Int
  let zeroFill: ZeroFill
  /// Per-CPU page caches: a power of two, 1 ... `CPU.maximum`.
  let slotCount: Int
  /// The RAM ranges, sorted by address.
  @usableFromInline var rangeCount = 0
  @usableFromInline var ranges = InlineArray<64, FrameRange>(repeating: .empty)

  init(pageCount: Int, directMapOffset: Int, zeroFill: ZeroFill, slotCount: Int) {
    self.pageCount = pageCount
    self.directMapOffset = directMapOffset
    self.zeroFill = zeroFill
    self.slotCount = slotCount
  }
}

// The lookups, on a pointer to the layout: a method of `FrameLayout` itself would take
// the layout by value, a copy of its 2.5 KiB range table on every call.
extension UnsafeMutablePointer where Pointee == FrameLayout {
  /// The range holding entry `index` (the last whose first index is not above it).
  /// - Complexity: O(log ranges); O(1) with one range.
  @inline(__always)
  func range(ofIndex index: Int) -> FrameRange {
    if pointee.rangeCount == 1 { return pointee.ranges[0] }
    var low = 0
    var high = pointee.rangeCount - 1
    while low < high {
      let middle = (low + high + 1) >> 1
      if pointee.ranges[middle].firstIndex <= index { low = middle } else { high = middle - 1 }
    }
    return pointee.ranges[low]
  }

  /// The range holding `physical`, or nil in a hole or outside RAM.
  /// - Complexity: O(1) in the first range (one compare); O(log ranges) elsewhere.
  @inlinable @inline(__always)
  func range(ofPhysical physical: UInt) -> FrameRange? {
    // The first range first: every range on a board with one, and the low RAM of the
    // others, without the search's loads.
    let first = pointee.ranges[0]
    if physical &- first.base < first.end &- first.base { return first }
    return rangeBySearch(ofPhysical: physical)
  }

  /// `range(ofPhysical:)` past the first range: a binary search of the ranges. Inline,
  /// so that a lookup on a fast path stays free of calls.
  /// - Complexity: O(log ranges).
  @inlinable @inline(__always)
  func rangeBySearch(ofPhysical physical: UInt) -> FrameRange? {
    var low = 0
    var high = pointee.rangeCount &- 1
    while low < high {
      let middle = (low &+ high &+ 1) >> 1
      if pointee.ranges[middle].base <= physical { low = middle } else { high = middle &- 1 }
    }
    let found = pointee.ranges[low]
    return physical >= found.base && physical < found.end ? found : nil
  }

  /// Physical address of page `index` (`0 <= index < pageCount`, not checked).
  /// - Complexity: O(log ranges).
  @inline(__always)
  func address(ofPage index: Int) -> UInt {
    let range = range(ofIndex: index)
    return range.base + UInt(index - range.firstIndex) << UInt(Page.shift)
  }

  /// Index of the page holding `physical`, or nil outside RAM or in a hole.
  /// - Complexity: O(log ranges).
  @inlinable @inline(__always)
  func pageIndex(ofPhysical physical: UInt) -> Int? {
    // The first range's entries start at index 0.
    let first = pointee.ranges[0]
    let offset = physical &- first.base
    if offset < first.end &- first.base { return Int(truncatingIfNeeded: offset >> UInt(Page.shift)) }
    guard let range = rangeBySearch(ofPhysical: physical) else { return nil }
    // Cannot wrap: base <= physical < end, and the indices fit the array.
    return range.firstIndex &+ Int(truncatingIfNeeded: (physical &- range.base) >> UInt(Page.shift))
  }

  /// Entry indices of the whole pages of `[start, end)` inside `range`, or nil.
  /// - Complexity: O(1).
  func span(of range: FrameRange, start: UInt, end: UInt) -> (first: Int, limit: Int)? {
    guard let roundedStart = Page.roundUp(max(start, range.base)) else { return nil }
    let roundedEnd = Page.roundDown(min(end, range.end))
    guard roundedStart < roundedEnd else { return nil }
    return (range.firstIndex + Int((roundedStart - range.base) >> UInt(Page.shift)),
      range.firstIndex + Int((roundedEnd - range.base) >> UInt(Page.shift)))
  }
}
