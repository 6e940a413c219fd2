/// A snapshot of a heap's accounting. `claimedBytes == usedBytes + freeBytes + overheadBytes`.
public struct HeapStatistics: Sendable, Equatable {
  /// Bytes the heap owns: arenas and the control block.
  public var claimedBytes: Int
  /// Payload bytes of allocated blocks (what callers may use).
  public var usedBytes: Int
  /// Payload bytes of free blocks.
  public var freeBytes: Int
  /// Headers, sentinels and the control block: claimed − used − free.
  public var overheadBytes: Int
  /// Highest `usedBytes` seen.
  public var peakUsedBytes: Int
  public var allocatedBlocks: Int
  public var freeBlocks: Int
  /// Payload bytes of the largest free block.
  public var largestFreeBlock: Int
  public var arenas: Int
}

extension Heap {
  /// The current statistics.
  /// - Complexity: O(1) except the largest free block: one scan of the highest
  ///   non-empty size class's list.
  public var statistics: HeapStatistics {
    let c = control.pointee
    var largest = 0
    if c.firstLevelBitmap != 0 {
      let first = 31 - c.firstLevelBitmap.leadingZeroBitCount
      let second = 31 - secondLevelBitmaps[first].leadingZeroBitCount
      var block = heads[first * SizeClass.secondLevelCount + second]
      while let current = block {
        largest = max(largest, Block.size(current) - Block.headerSize)
        block = Block.nextFree(current)
      }
    }
    return HeapStatistics(
      claimedBytes: c.claimedBytes, usedBytes: c.usedBytes, freeBytes: c.freeBytes,
      overheadBytes: c.claimedBytes - c.usedBytes - c.freeBytes, peakUsedBytes: c.peakUsedBytes,
      allocatedBlocks: c.allocatedBlocks, freeBlocks: c.freeBlocks, largestFreeBlock: largest,
      arenas: c.arenaCount)
  }

  /// The arenas as (first block address, end) pairs.
  public var arenaRanges: [(start: UInt, end: UInt)] {
    (0..<control.pointee.arenaCount).map { arenas[$0] }
  }
}
