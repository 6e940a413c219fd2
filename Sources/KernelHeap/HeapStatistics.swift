import KernelSync
import PageFrames

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
  /// Allocated blocks in the arenas (kmalloc's size-class objects are counted in
  /// `slabObjects`, large allocations in `largeAllocations`).
  public var allocatedBlocks: Int
  /// Free blocks in the arenas.
  public var freeBlocks: Int
  /// Payload bytes of the largest free block.
  public var largestFreeBlock: Int
  /// The initial arena plus the growth arenas held now.
  public var arenas: Int
  /// Large allocations (page runs outside the arenas) and their bytes; not part of
  /// `claimedBytes` or `usedBytes`.
  public var largeAllocations: Int
  /// Bytes of the large allocations' page runs (whole pages); not part of
  /// `claimedBytes` or `usedBytes`.
  public var largeBytes: Int
  /// Slab runs held (size classes and object caches) and their bytes, not part of
  /// `claimedBytes`; kmalloc objects live in the size classes' slabs, not part of
  /// `usedBytes` or `allocatedBlocks`.
  public var slabBytes: Int
  /// Live kmalloc objects in the size classes' slabs (as `Heap.sizeClassObjects`);
  /// object caches' objects are counted by each cache's statistics.
  public var slabObjects: Int
}

extension Heap {
  /// The current statistics. Used bytes, the peak, claimed bytes and the allocated
  /// count are kept as the heap runs; free bytes, the free count and the largest free
  /// block come from a walk, which keeps them off kmalloc's and kfree's paths.
  /// Taken holding every heap lock (`withAllLocks`), so it is consistent while other
  /// CPUs allocate.
  /// - Complexity: O(blocks + caches).
  public var statistics: HeapStatistics {
    // From inside the heap on this CPU (its locks refuse): the figures as they stand.
    withAllLocks { core in statistics(of: core) } ?? statistics(of: core.snapshot.pointee)
  }

  private func statistics(of c: HeapCore) -> HeapStatistics {
    var free = 0, freeCount = 0, largest = 0
    forEachBlock(c) { block in
      if Block.isFree(block) {
        let payload = Block.size(block) - Block.headerSize
        free += payload
        freeCount += 1
        largest = max(largest, payload)
      }
    }
    return HeapStatistics(
      claimedBytes: c.claimedBytes, usedBytes: c.usedBytes, freeBytes: free,
      overheadBytes: c.claimedBytes - c.usedBytes - free, peakUsedBytes: c.peakUsedBytes,
      allocatedBlocks: c.allocatedBlocks, freeBlocks: freeCount, largestFreeBlock: largest,
      arenas: c.arenaCount, largeAllocations: c.largeAllocations, largeBytes: c.largeBytes,
      slabBytes: c.slabBytes, slabObjects: liveSizeClassObjects)
  }

  /// Live kmalloc objects in the size classes' slabs.
  /// - Complexity: O(slabs).
  public var sizeClassObjects: Int {
    withAllLocks { _ in liveSizeClassObjects } ?? liveSizeClassObjects
  }

  private var liveSizeClassObjects: Int {
    guard let caches = config.pointee.classCaches else { return 0 }
    let cpu = CPU.current
    var live = 0
    for index in 0..<classCacheCount {
      let cache = classCache(caches, index)
      live += cache.withHeld(cpu: cpu) { liveObjects($0) } ?? liveObjects(cache.snapshot.pointee)
    }
    return live
  }

  /// Calls `body` with every block of every arena in address order, sentinels excluded.
  /// A corrupted size ends that arena's walk instead of looping or leaving the arena
  /// (`check()` is the walk that reports such damage).
  func forEachBlock(_ core: HeapCore, _ body: (UnsafeMutableRawPointer) -> Void) {
    core.forEachArena { start, end in
      var block = UnsafeMutableRawPointer(bitPattern: start)!
      while Block.flags(block) & Block.flagSentinel == 0 {
        let size = Block.size(block)
        // The next header must lie inside the arena: block + size <= end - header.
        guard size >= Block.minimumSize, UInt(size) <= end - UInt(Block.headerSize) - UInt(bitPattern: block) else { break }
        body(block)
        block += size
      }
    }
  }

  /// The arenas as (first block address, end) pairs: the initial arena first.
  /// - Complexity: O(arenas).
  public var arenaRanges: [(start: UInt, end: UInt)] {
    withAllLocks { core in
      var ranges: [(start: UInt, end: UInt)] = []
      core.forEachArena { ranges.append(($0, $1)) }
      return ranges
    } ?? []
  }
}
