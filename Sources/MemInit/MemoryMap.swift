import PageFrames

/// The boot log's memory map: runs of pages with one owner, in address order.
public struct MemoryMap {
  public struct Region: Sendable, Equatable {
    public let owner: PageOwner
    public let start: UInt
    public let end: UInt
    public var pages: Int { Int((end - start) >> UInt(Page.shift)) }
  }

  /// At most this many regions are kept; more are merged into the last.
  public static let capacity = 16
  private var storage: (Region?, Region?, Region?, Region?, Region?, Region?, Region?, Region?,
    Region?, Region?, Region?, Region?, Region?, Region?, Region?, Region?) =
    (nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil)
  public private(set) var count = 0
  public let ramBase: UInt
  public let ramSize: UInt

  /// Scans the allocator's array for runs of one owner (free blocks are runs of `.free`).
  /// - Complexity: O(pages).
  public init(_ frames: PageFrameAllocator) {
    ramBase = frames.base
    ramSize = UInt(frames.pageCount) << UInt(Page.shift)
    var index = 0
    while index < frames.pageCount {
      let owner = frames.entries[index].owner
      var end = index + 1
      while end < frames.pageCount && frames.entries[end].owner == owner { end += 1 }
      append(Region(owner: owner, start: frames.address(ofPage: index), end: frames.address(ofPage: end)))
      index = end
    }
  }

  private mutating func append(_ region: Region) {
    withUnsafeMutableBytes(of: &storage) { raw in
      let slots = raw.baseAddress!.assumingMemoryBound(to: Region?.self)
      if count < MemoryMap.capacity {
        slots[count] = region
        count += 1
      } else {
        let last = slots[count - 1]!
        slots[count - 1] = Region(owner: last.owner, start: last.start, end: region.end)
      }
    }
  }

  /// Region `index`.
  /// - Precondition: `0 <= index < count` (a trap otherwise).
  /// - Complexity: O(1) (copies the fixed-size storage).
  public subscript(index: Int) -> Region {
    var copy = storage
    return withUnsafeBytes(of: &copy) { $0.baseAddress!.assumingMemoryBound(to: Region?.self)[index]! }
  }

  /// Sum of the regions' pages; equals RAM / 4096 when the map is complete.
  public var totalPages: Int {
    var total = 0
    for index in 0..<count { total += self[index].pages }
    return total
  }
}
