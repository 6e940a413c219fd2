import KernelMemory
import KernelHeap
import PageFrames

/// The growth-until-exhaustion workloads of the tests and of `make bench`'s `growth`.
public enum GrowthWorkload: CaseIterable, Sendable {
  /// allocPage, then kmalloc(1000), repeated.
  case interleaved1000
  /// kmalloc(2048), with an allocPage every 100 kmallocs.
  case interleaved2048
  /// kmalloc of uniform random sizes 16 B ... 32 KiB, no page allocations.
  case random16To32k

  /// The workload's name in the benchmark's JSON.
  public var name: StaticString {
    switch self {
    case .interleaved1000: return "interleaved_1000"
    case .interleaved2048: return "interleaved_2048"
    case .random16To32k: return "random_16_32k"
    }
  }
}

/// What a growth workload measured.
public struct GrowthOutcome: Sendable {
  /// Successful kmallocs before the first nil.
  public var kmallocs = 0
  /// Bytes kmalloc served (as requested) plus the bytes of the workload's own pages, at
  /// the first nil.
  public var servedBytes = 0
  /// Free pages × 4096 plus the heap's free bytes when the workload started.
  public var startFreeBytes = 0
  public var startFreePages = 0
  public var freePagesAtFirstNil = 0
  public var endFreePages = 0
  /// Pages owned by the heap (arenas and large runs, the initial 1 MiB included).
  public var heapPagesAtStart = 0
  public var heapPagesAtPeak = 0
  public var heapPagesAtEnd = 0
  /// Every block and page held its mark until it was freed, and every free was accepted.
  public var intact = true

  /// servedBytes ÷ startFreeBytes (target ≥ 0.95).
  public var servedFraction: Double { Double(servedBytes) / Double(max(startFreeBytes, 1)) }
  /// Pages the heap gave back ÷ pages it had taken beyond its start (target ≥ 0.99).
  public var returnedFraction: Double {
    let taken = heapPagesAtPeak - heapPagesAtStart
    return taken <= 0 ? 1 : Double(heapPagesAtPeak - heapPagesAtEnd) / Double(taken)
  }
}

/// Runs `workload` on `heap` (growing from `frames`) until kmalloc first returns nil,
/// then frees everything, newest first, and gives the empty slabs back. Each block and page carries a link and a mark
/// (its own address scrambled), checked when it is freed, so memory handed out twice
/// shows up. No other memory is used: the allocations are chained through themselves.
/// - Complexity: O(allocations).
public func runGrowthWorkload(_ workload: GrowthWorkload, frames: PageFrameAllocator, heap: Heap, seed: UInt64) -> GrowthOutcome {
  let markKey: UInt = 0x5EED_F00D_CAFE_BEEF
  func heapPages() -> Int { frames.count(.heap) + frames.count(.heapLarge) + frames.count(.slab) }
  var outcome = GrowthOutcome()
  outcome.startFreePages = frames.freePageCount
  outcome.startFreeBytes = frames.freePageCount << Page.shift + heap.statistics.freeBytes
  outcome.heapPagesAtStart = heapPages()
  var rng = SplitMix(seed: seed)
  var blocks: UnsafeMutableRawPointer? = nil
  var pages: UnsafeMutableRawPointer? = nil
  func push(_ item: UnsafeMutableRawPointer, onto list: inout UnsafeMutableRawPointer?) {
    item.storeBytes(of: list, as: UnsafeMutableRawPointer?.self)
    item.storeBytes(of: UInt(bitPattern: item) ^ markKey, toByteOffset: 8, as: UInt.self)
    list = item
  }
  while true {
    let size: Int
    let takesPage: Bool
    switch workload {
    case .interleaved1000:
      size = 1000
      takesPage = true
    case .interleaved2048:
      size = 2048
      takesPage = outcome.kmallocs % 100 == 99
    case .random16To32k:
      size = rng.inRange(16..<(32 << 10) + 1)
      takesPage = false
    }
    if takesPage, let page = frames.allocPages(order: 0, zeroed: false) {
      push(page, onto: &pages)
      outcome.servedBytes += Page.size
    }
    guard let block = heap.allocate(size) else { break }
    push(block, onto: &blocks)
    outcome.kmallocs += 1
    outcome.servedBytes += size
  }
  outcome.freePagesAtFirstNil = frames.freePageCount
  outcome.heapPagesAtPeak = heapPages()
  while let block = blocks {
    if block.load(fromByteOffset: 8, as: UInt.self) != UInt(bitPattern: block) ^ markKey { outcome.intact = false }
    blocks = block.load(as: UnsafeMutableRawPointer?.self)
    do throws(HeapError) { try heap.deallocate(block) } catch { outcome.intact = false }
  }
  while let page = pages {
    if page.load(fromByteOffset: 8, as: UInt.self) != UInt(bitPattern: page) ^ markKey { outcome.intact = false }
    pages = page.load(as: UnsafeMutableRawPointer?.self)
    do throws(PageFrameError) { try frames.freePage(page) } catch { outcome.intact = false }
  }
  // The size classes keep an empty slab each against thrashing: give them back too.
  heap.releaseEmptySlabs()
  outcome.heapPagesAtEnd = heapPages()
  outcome.endFreePages = frames.freePageCount
  return outcome
}
