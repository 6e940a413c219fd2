import KernelHeap
import PageFrames
import Testing

/// The page run the next growth request gets (once), for the C growth callback.
nonisolated(unsafe) var limitTestRun: UnsafeMutableRawPointer?

let growOnceFromLimitRun: HeapGrowPages = { _ in
  defer { limitTestRun = nil }
  return limitTestRun
}

/// Heaps at the edge of what the size index can describe (host only: 8 GiB of address
/// space, of which only the pages holding headers are ever touched).
struct HeapLimitTests {
  /// A growth run right after an arena whose blocks are near the largest indexable size
  /// must become an arena of its own: merging would make a block the size classes
  /// cannot index once its neighbours are freed.
  @Test("growth never merges an arena past the largest block size")
  func growthPastTheLargestBlock() throws {
    let largestBlock = Heap.maximumRequest + 16
    let span = largestBlock + 16 - 4096  // arena bytes after the control block
    let ram = SimulatedRAM(bytes: Heap.controlBytes + span + (64 << 10))
    // Place the heap so that it ends on a page boundary, with room for a run after it.
    let start = ram.base + (4096 - Heap.controlBytes % 4096) % 4096
    let heap = try #require(Heap(start: start, size: Heap.controlBytes + span, zeroFill: hostZeroFill,
                                 growPages: growOnceFromLimitRun, growthCeiling: Int.max))
    let firstBlock = span - 16
    // Take all but a 1 KiB tail, so the next request needs growth.
    let big = try #require(heap.allocate(firstBlock - 1024 - 16))
    limitTestRun = start + Heap.controlBytes + span
    let small = try #require(heap.allocate(6000))
    #expect(heap.statistics.arenas == 2)
    try heap.deallocate(big)
    try heap.deallocate(small)
    #expect(heap.check() == nil)
    let stats = heap.statistics
    #expect(stats.largestFreeBlock + 16 <= largestBlock)
    #expect(stats.allocatedBlocks == 0 && stats.freeBlocks == stats.arenas)
  }
}
