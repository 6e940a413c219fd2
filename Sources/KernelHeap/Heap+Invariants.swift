import PageFrames

extension Heap {
  /// `heapCheck`: walks every arena and every free list and checks that
  /// - every header's check value is intact and sizes are multiples of 16, at least 32
  ///   and at most the largest size the index holds;
  /// - each boundary tag (`prevSize`, the previous-free flag) matches the block before it;
  /// - no two free blocks are adjacent;
  /// - block sizes plus sentinels add up to each arena, and arenas (with their records)
  ///   plus the control block to the claimed bytes;
  /// - the growth-arena list is linked both ways, each record heads a `.heap` page run
  ///   tagged with this heap, and the spare arena is on it;
  /// - every free block is on the list of its size class, and only free blocks are;
  /// - both bitmap levels agree with the lists;
  /// - the kept counters (used bytes, allocated blocks) equal a recount;
  /// - the slab caches and their slabs are consistent (`checkSlabs`).
  ///
  /// - Returns: nil, or the first broken invariant and where.
  /// - Complexity: O(blocks). For tests, fuzzing and debug boots.
  public func check() -> HeapCheckFailure? {
    withAllLocks { core in unlockedCheck(core) } ?? HeapCheckFailure(reason: "checked from inside the heap (lock held)", address: 0)
  }

  private func unlockedCheck(_ core: HeapCore) -> HeapCheckFailure? {
    var used = 0, allocatedCount = 0, freeCount = 0, arenas = 0
    var claimed = core.controlSize
    var failure: HeapCheckFailure? = nil
    if let broken = checkArenaList(core) { return broken }
    if let broken = checkSlabs(core) { return broken }
    core.forEachArena { start, end in
      guard failure == nil else { return }
      arenas += 1
      claimed += Int(end - start) + (start == core.initialStart ? 0 : Heap.arenaRecordBytes)
      var block = UnsafeMutableRawPointer(bitPattern: start)!
      var previousSize = 0
      var previousFree = false
      while true {
        let address = UInt(bitPattern: block)
        guard address + UInt(Block.headerSize) <= end else {
          failure = HeapCheckFailure(reason: "block runs past its arena", address: address)
          return
        }
        guard Block.isIntact(block) else { failure = HeapCheckFailure(reason: "header check value wrong", address: address); return }
        guard Block.prevSize(block) == previousSize else {
          failure = HeapCheckFailure(reason: "boundary tag differs from previous block's size", address: address)
          return
        }
        guard (Block.flags(block) & Block.flagPrevFree != 0) == previousFree else {
          failure = HeapCheckFailure(reason: "previous-free flag wrong", address: address)
          return
        }
        if Block.flags(block) & Block.flagSentinel != 0 {
          guard address + UInt(Block.headerSize) == end, Block.size(block) == 0 else {
            failure = HeapCheckFailure(reason: "sentinel not at arena end", address: address)
            return
          }
          break
        }
        let size = Block.size(block)
        guard size >= Block.minimumSize, size & 15 == 0, size <= SizeClass.maximumBlockSize else {
          failure = HeapCheckFailure(reason: "bad block size", address: address)
          return
        }
        let isFree = Block.isFree(block)
        if isFree {
          guard !previousFree else { failure = HeapCheckFailure(reason: "two adjacent free blocks", address: address); return }
          freeCount += 1
        } else {
          used += size - Block.headerSize
          allocatedCount += 1
        }
        previousSize = size
        previousFree = isFree
        block += size
      }
    }
    if let failure { return failure }
    if arenas != core.arenaCount {
      return HeapCheckFailure(reason: "arena count differs from the arena list", address: UInt(arenas))
    }
    if claimed != core.claimedBytes {
      return HeapCheckFailure(reason: "arenas do not add up to the claimed bytes", address: 0)
    }
    if used != core.usedBytes || allocatedCount != core.allocatedBlocks {
      return HeapCheckFailure(reason: "counters differ from a recount", address: 0)
    }
    var listed = 0
    for first in 0..<SizeClass.firstLevelCount {
      var secondMap: UInt32 = 0
      for second in 0..<SizeClass.secondLevelCount {
        var block = core.heads[first * SizeClass.secondLevelCount + second]
        if block != nil { secondMap |= 1 << UInt32(second) }
        var previous: UnsafeMutableRawPointer? = nil
        while let current = block {
          let address = UInt(bitPattern: current)
          guard let arena = core.arena(containing: address), address >= arena.start, Block.isIntact(current), Block.isFree(current)
          else { return HeapCheckFailure(reason: "free list holds a block that is not free", address: address) }
          let index = SizeClass.index(of: Block.size(current))
          guard index.first == first, index.second == second else {
            return HeapCheckFailure(reason: "free block on the wrong size class", address: address)
          }
          guard Block.prevFree(current) == previous else {
            return HeapCheckFailure(reason: "free list back link broken", address: address)
          }
          listed += 1
          guard listed <= freeCount else { return HeapCheckFailure(reason: "free lists loop or hold extra blocks", address: address) }
          previous = current
          block = Block.nextFree(current)
        }
      }
      guard core.secondLevelBitmaps[first] == secondMap else {
        return HeapCheckFailure(reason: "second-level bitmap disagrees with lists", address: UInt(first))
      }
      guard (core.firstLevelBitmap & (1 << UInt32(first)) != 0) == (secondMap != 0) else {
        return HeapCheckFailure(reason: "first-level bitmap disagrees", address: UInt(first))
      }
    }
    if listed != freeCount { return HeapCheckFailure(reason: "a free block is on no list", address: 0) }
    return nil
  }

  /// The growth arenas' links run both ways, stay within `arenaCount`, and each record
  /// heads a `.heap` run with this heap's tag; the spare is one of them.
  private func checkArenaList(_ core: HeapCore) -> HeapCheckFailure? {
    var record = core.growthArenas
    var previous: UInt = 0
    var count = 1
    var spareFound = core.spareArena == 0
    while record != 0 {
      count += 1
      guard count <= core.arenaCount, let frames = core.frames else {
        return HeapCheckFailure(reason: "arena list longer than the arena count", address: record)
      }
      guard ArenaRecord.previous(record) == previous else {
        return HeapCheckFailure(reason: "arena list back link broken", address: record)
      }
      let physical = frames.physical(of: UnsafeMutableRawPointer(bitPattern: record)!)
      guard let run = frames.run(containing: physical), run.owner == .heap, run.start == physical,
        run.tag == core.tag
      else { return HeapCheckFailure(reason: "growth arena is not a heap page run of this heap", address: record) }
      if record == core.spareArena { spareFound = true }
      previous = record
      record = ArenaRecord.next(record)
    }
    if !spareFound { return HeapCheckFailure(reason: "spare arena is not on the arena list", address: core.spareArena) }
    return nil
  }
}
