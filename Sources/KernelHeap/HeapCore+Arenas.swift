import KernelSync
import PageFrames

// Growth arenas and large allocations: the heap's traffic with the page allocator.
//
// A growth arena is one buddy run owned by `.heap` and tagged with the heap's id:
//
//     run start   record: next, previous growth arena (16 bytes)
//     +16         first block ... blocks ...
//     end - 16    sentinel
//
// A large allocation is a run owned by `.heapLarge` with the same tag; its first page
// is the payload, and its length lives in the page entries.
extension HeapCore {
  /// Serves a request above the threshold as a page run of its own.
  mutating func allocateLarge(_ size: Int) -> UnsafeMutableRawPointer? {
    guard let frames = frames, size <= frames.pageCount << Page.shift else { return nil }
    let pages = Page.count(forBytes: size)
    let bytes = pages << Page.shift
    guard heldBytes + bytes <= growthCeiling,
      let run = frames.allocContiguous(pages: pages, owner: .heapLarge, tag: tag, zeroed: false)
    else { return nil }
    largeAllocations += 1
    largeBytes += bytes
    return run
  }

  /// Returns a located large allocation to the page allocator.
  mutating func releaseLarge(_ run: UnsafeMutableRawPointer, pages: Int) {
    guard let frames = frames else { return }
    // Cannot throw: `locate` found this run, owned by `.heapLarge`, headed here.
    try? frames.freeContiguous(run, pages: pages, owner: .heapLarge)
    largeAllocations -= 1
    largeBytes -= pages << Page.shift
  }

  /// Gives the pages of a located large allocation past its first `keep` back to the
  /// page allocator (a shrinking reallocate).
  mutating func shrinkLarge(_ run: UnsafeMutableRawPointer, pages: Int, to keep: Int) {
    guard keep < pages, let frames = frames else { return }
    // Cannot throw: `locate` found this run, owned by `.heapLarge`, headed here, and
    // 1 <= keep < pages.
    guard (try? frames.shrinkContiguous(run, pages: pages, keep: keep, owner: .heapLarge)) != nil else { return }
    largeBytes -= (pages - keep) << Page.shift
  }

  /// Claims one page run for a block of `need` bytes: the largest free run up to the
  /// growth step, at least what `need` requires, within the ceiling. Smaller runs are
  /// tried when a larger one cannot be had.
  mutating func grow(_ need: Int) -> Bool {
    guard let frames = frames else { return false }
    let minimumPages = Page.count(forBytes: need + Heap.arenaRecordBytes + Block.headerSize)
    let minimumOrder = Page.order(forPages: minimumPages)
    guard minimumOrder <= Page.maxOrder else { return false }
    let largest = frames.largestFreeRun
    let largestOrder = largest == 0 ? 0 : largest.trailingZeroBitCount
    var order = max(minimumOrder, min(growthStepOrder, largestOrder))
    while order >= minimumOrder {
      let bytes = Page.size << order
      if heldBytes + bytes <= growthCeiling,
        let run = frames.allocPages(order: order, owner: .heap, tag: tag, zeroed: false)
      {
        addArena(run, bytes: bytes)
        return true
      }
      order -= 1
    }
    return false
  }

  /// Makes run `[run, run + bytes)` a growth arena: a record, one free block, a sentinel.
  private mutating func addArena(_ run: UnsafeMutableRawPointer, bytes: Int) {
    let record = UInt(bitPattern: run)
    let newest = growthArenas
    ArenaRecord.setNext(record, newest)
    ArenaRecord.setPrevious(record, 0)
    if newest != 0 { ArenaRecord.setPrevious(newest, record) }
    growthArenas = record
    let block = run + Heap.arenaRecordBytes
    let blockSize = bytes - Heap.arenaRecordBytes - Block.headerSize
    Block.write(block, size: blockSize, flags: Block.flagFree, prevSize: 0)
    Block.write(block + blockSize, size: 0, flags: Block.flagSentinel | Block.flagPrevFree, prevSize: blockSize)
    claimedBytes += bytes
    arenaCount += 1
    insertFree(block)
  }

  /// A growth arena's only block `block` (free, off the lists) now spans it: keep it as
  /// the spare when the rest of the heap is short of room and no other spare is empty,
  /// otherwise give its pages back.
  mutating func arenaEmptied(_ block: UnsafeMutableRawPointer) {
    let record = UInt(bitPattern: block) - UInt(Heap.arenaRecordBytes)
    let spare = spareArena
    let otherSpareEmpty = spare != 0 && spare != record && isEmptyArena(spare)
    if !otherSpareEmpty && approximateFreeBytes - Block.size(block) < Heap.spareWatermark {
      spareArena = record
      insertFree(block)
      return
    }
    if spare == record { spareArena = 0 }
    giveBack(record, bytes: ArenaRecord.emptyArenaBytes(block))
  }

  /// Gives the spare arena back once the rest of the heap has room again.
  mutating func releaseSpareIfRoomElsewhere() {
    let spare = spareArena
    guard isEmptyArena(spare) else { return }
    let block = ArenaRecord.firstBlock(spare)
    guard approximateFreeBytes - Block.size(block) >= Heap.spareWatermark else { return }
    removeFree(block)
    spareArena = 0
    giveBack(spare, bytes: ArenaRecord.emptyArenaBytes(block))
  }

  /// Gives the spare growth arena back, if it is empty.
  /// - Complexity: O(the arena's pages).
  mutating func releaseSpare() {
    let spare = spareArena
    guard spare != 0, isEmptyArena(spare) else { return }
    let block = ArenaRecord.firstBlock(spare)
    removeFree(block)
    spareArena = 0
    giveBack(spare, bytes: ArenaRecord.emptyArenaBytes(block))
  }

  /// Whether the growth arena at `record` holds one free block and its sentinel.
  private func isEmptyArena(_ record: UInt) -> Bool {
    let block = ArenaRecord.firstBlock(record)
    return Block.isFree(block) && Block.flags(Block.next(block)) & Block.flagSentinel != 0
  }

  /// Free bytes in all arenas from the kept counters, without a walk: claimed minus
  /// payloads, headers of allocated blocks, the control block, records and sentinels.
  /// Over by 16 bytes per free block (their headers are not counted).
  var approximateFreeBytes: Int {
    let c = self
    return c.claimedBytes - c.usedBytes - c.allocatedBlocks * Block.headerSize - c.controlSize
      - c.arenaCount * Block.headerSize - (c.arenaCount - 1) * Heap.arenaRecordBytes
  }

  /// Unlinks the growth arena at `record` (`bytes` long, its block off the lists) and
  /// returns its run to the page allocator.
  private mutating func giveBack(_ record: UInt, bytes: Int) {
    let next = ArenaRecord.next(record)
    let previous = ArenaRecord.previous(record)
    if next != 0 { ArenaRecord.setPrevious(next, previous) }
    if previous != 0 {
      ArenaRecord.setNext(previous, next)
    } else {
      growthArenas = next
    }
    claimedBytes -= bytes
    arenaCount -= 1
    guard let frames = frames else { return }
    // Cannot throw: the run was allocated by `grow` with this order and owner.
    try? frames.freePages(UnsafeMutableRawPointer(bitPattern: record)!, order: Page.order(forPages: bytes >> Page.shift), owner: .heap)
  }

  /// Calls `body` with (first block, end) of every arena: the initial one, then the
  /// growth arenas from the newest. The end is one past the sentinel.
  func forEachArena(_ body: (UInt, UInt) -> Void) {
    body(initialStart, initialEnd)
    var record = growthArenas
    var steps = 0
    while record != 0 && steps < arenaCount {
      body(record + UInt(Heap.arenaRecordBytes), record + UInt(arenaBytes(record)))
      record = ArenaRecord.next(record)
      steps += 1
    }
  }

  /// (first block, end) of the arena holding `address`, or nil when it is in none.
  /// - Complexity: O(1).
  func arena(containing address: UInt) -> (start: UInt, end: UInt)? {
    let c = self
    if address >= c.initialStart && address < c.initialEnd { return (c.initialStart, c.initialEnd) }
    guard let frames = c.frames, let pointer = UnsafeMutableRawPointer(bitPattern: address),
      let run = frames.run(containing: frames.physical(of: pointer)), run.owner == .heap, run.tag == c.tag
    else { return nil }
    return growthArenaBounds(run, frames)
  }

  /// (first block, end) of the growth arena that page run `run` holds.
  /// - Complexity: O(1).
  @inline(__always)
  func growthArenaBounds(_ run: PageRun, _ frames: PageFrameAllocator) -> (start: UInt, end: UInt) {
    growthArenaBounds(runStart: UInt(bitPattern: frames.pointer(toPhysical: run.start)), pages: run.pages)
  }

  /// (first block, end) of a growth arena whose run of `pages` pages starts at `runStart`
  /// (a direct-map address).
  /// - Complexity: O(1).
  @inline(__always)
  func growthArenaBounds(runStart: UInt, pages: Int) -> (start: UInt, end: UInt) {
    (runStart + UInt(Heap.arenaRecordBytes), runStart + UInt(pages << Page.shift))
  }

  /// The length of the growth arena at `record`, from its page entries.
  func arenaBytes(_ record: UInt) -> Int {
    guard let frames = frames,
      let run = frames.run(containing: frames.physical(of: UnsafeMutableRawPointer(bitPattern: record)!))
    else { return 0 }
    return run.pages << Page.shift
  }
}

/// The links at the start of a growth arena.
enum ArenaRecord {
  /// The arena's first block, right after the record.
  static func firstBlock(_ record: UInt) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: record + UInt(Heap.arenaRecordBytes))!
  }
  /// The whole arena's bytes when `block`, its first block, spans it: record, block, sentinel.
  static func emptyArenaBytes(_ block: UnsafeMutableRawPointer) -> Int {
    Block.size(block) + Heap.arenaRecordBytes + Block.headerSize
  }
  static func next(_ record: UInt) -> UInt { UnsafeRawPointer(bitPattern: record)!.load(as: UInt.self) }
  static func previous(_ record: UInt) -> UInt { UnsafeRawPointer(bitPattern: record)!.load(fromByteOffset: 8, as: UInt.self) }
  static func setNext(_ record: UInt, _ value: UInt) {
    UnsafeMutableRawPointer(bitPattern: record)!.storeBytes(of: value, as: UInt.self)
  }
  static func setPrevious(_ record: UInt, _ value: UInt) {
    UnsafeMutableRawPointer(bitPattern: record)!.storeBytes(of: value, toByteOffset: 8, as: UInt.self)
  }
}
