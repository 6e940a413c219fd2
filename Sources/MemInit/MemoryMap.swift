import PageFrames

/// The boot log's memory map: runs of pages with one owner, in address order, never
/// spanning a hole between RAM ranges.
public struct MemoryMap {
  /// A run of pages with one owner: `[start, end)`, physical.
  public struct Region: Sendable, Equatable {
    /// Who holds every page of the run.
    public let owner: PageOwner
    /// Physical address of the run's first page.
    public let start: UInt
    /// One past the run's last byte.
    public let end: UInt
    /// Pages in the region (a region merged past the capacity may span a hole).
    public let pages: Int
  }

  /// At most this many regions are kept; more are merged into the last.
  public static let capacity = 96
  private var storage = InlineArray<96, Region>(repeating: Region(owner: .free, start: 0, end: 0, pages: 0))
  /// Regions in the map, at most `capacity`.
  public private(set) var count = 0
  /// Physical address of the allocator's first page (`PageFrameAllocator.base`).
  public let ramBase: UInt
  /// The RAM the map is checked against: what firmware reported (or, without a report,
  /// the allocator's pages).
  public let ramSize: UInt
  /// The RAM ranges the allocator manages.
  public let ranges: PhysicalRanges

  /// Scans the allocator's array for runs of one owner (free blocks are runs of `.free`),
  /// range by range. `reportedRAMPages` is the total to check against, in pages
  /// (default: the allocator's own page count).
  /// - Complexity: O(pages).
  public init(_ frames: PageFrameAllocator, reportedRAMPages: Int? = nil) {
    self.init(frames, reportedRAMBytes: UInt(reportedRAMPages ?? frames.pageCount) << UInt(Page.shift))
  }

  /// Scans the allocator's array as `init(_:reportedRAMPages:)` does, to be checked
  /// against `reportedRAMBytes`: firmware's raw RAM total in bytes, counted apart from
  /// the allocator (`DeviceTree.reportedRAMBytes()`, the mailbox's sizes). A total that
  /// is not a whole number of pages never matches.
  /// - Complexity: O(pages).
  public init(_ frames: PageFrameAllocator, reportedRAMBytes: UInt) {
    ramBase = frames.base
    ramSize = reportedRAMBytes
    ranges = frames.ranges
    var firstIndex = 0
    for r in 0..<ranges.count {
      let limit = firstIndex + ranges[r].pages
      var index = firstIndex
      while index < limit {
        let owner = frames.entries[index].owner
        var end = index + 1
        while end < limit && frames.entries[end].owner == owner { end += 1 }
        let start = frames.address(ofPage: index)
        append(Region(owner: owner, start: start, end: start + UInt(end - index) << UInt(Page.shift), pages: end - index))
        index = end
      }
      firstIndex = limit
    }
  }

  private mutating func append(_ region: Region) {
    if count < MemoryMap.capacity {
      storage[count] = region
      count += 1
    } else {
      let last = storage[count - 1]
      storage[count - 1] = Region(owner: last.owner, start: last.start, end: region.end, pages: last.pages + region.pages)
    }
  }

  /// Region `index`.
  /// - Precondition: `0 <= index < count` (a trap otherwise).
  /// - Complexity: O(1).
  public subscript(index: Int) -> Region {
    precondition(index >= 0 && index < count, "memory map index out of range")
    return storage[index]
  }

  /// Whether the regions account for exactly the RAM firmware reported, to the byte.
  public var isExact: Bool { UInt(totalPages) << UInt(Page.shift) == ramSize }

  /// Sum of the regions' pages; equals RAM / 4096 when the map is complete.
  public var totalPages: Int {
    var total = 0
    for index in 0..<count { total += self[index].pages }
    return total
  }
}
