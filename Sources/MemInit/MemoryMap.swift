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
  private var storage = InlineArray<16, Region>(repeating: Region(owner: .free, start: 0, end: 0))
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
    if count < MemoryMap.capacity {
      storage[count] = region
      count += 1
    } else {
      let last = storage[count - 1]
      storage[count - 1] = Region(owner: last.owner, start: last.start, end: region.end)
    }
  }

  /// Region `index`.
  /// - Precondition: `0 <= index < count` (a trap otherwise).
  /// - Complexity: O(1).
  public subscript(index: Int) -> Region {
    precondition(index >= 0 && index < count, "memory map index out of range")
    return storage[index]
  }

  /// Sum of the regions' pages; equals RAM / 4096 when the map is complete.
  public var totalPages: Int {
    var total = 0
    for index in 0..<count { total += self[index].pages }
    return total
  }
}
