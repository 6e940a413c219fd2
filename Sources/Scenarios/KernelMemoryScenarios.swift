import KernelMemory
import KernelHeap
import MemInit
import PageFrames

/// A whole simulated machine over the scenario memory: memInit's layout with all of
/// it as RAM at `simulatedBase`, built into a `KernelMemory` of its own (not the global).
/// CPU slots of the heaps and page frames a scenario makes over its own small areas:
/// fixed, so that a scenario runs the same on the host and on a guest of any core count
/// (a 64-core guest's default would not fit their control blocks).
let scenarioSlots = 8

func makeMachine(_ memory: ScenarioMemory, _ e: inout Expectations) -> (frames: PageFrameAllocator, heap: Heap)? {
  let config = scenarioConfig(memory, ramSize: UInt(memory.bytes))
  do throws(MemInitError) {
    let machine = try KernelMemory(config, layout: try planLayout(config))
    guard let frames = machine.frames, let heap = machine.heap else { return nil }
    return (frames, heap)
  } catch {
    e.expect(false, "memInit refused the scenario machine", error.address)
    return nil
  }
}

/// Growth until exhaustion: kmalloc kept succeeding until at most 1% of RAM was free,
/// nothing was handed out twice, and after freeing everything the heap holds at most its
/// initial 1 MiB plus one growth step and every page is back.
func expectGrowthUntilExhaustion(_ workload: GrowthWorkload, _ memory: ScenarioMemory, _ e: inout Expectations) {
  guard let (frames, heap) = makeMachine(memory, &e) else { return }
  let initialClaim = heap.statistics.claimedBytes
  let outcome = runGrowthWorkload(workload, frames: frames, heap: heap, seed: memory.seed)
  e.expect(outcome.kmallocs > 0 && outcome.heapPagesAtPeak > outcome.heapPagesAtStart, "the heap never grew", UInt(outcome.kmallocs))
  e.expect(outcome.freePagesAtFirstNil * 100 <= frames.pageCount, "kmalloc failed with more than 1% of RAM free (pages)", UInt(outcome.freePagesAtFirstNil))
  e.expect(outcome.intact, "a block or page lost its mark, or a valid free was refused", 0)
  let stats = heap.statistics
  e.expect(stats.allocatedBlocks == 0 && stats.largeAllocations == 0, "allocations left after freeing everything", UInt(stats.allocatedBlocks))
  e.expect(stats.claimedBytes <= initialClaim + (Page.size << Page.maxOrder), "heap holds more than 1 MiB + one growth step", UInt(stats.claimedBytes))
  e.expect(outcome.endFreePages == outcome.startFreePages, "free pages not back to where they started", UInt(outcome.endFreePages))
  e.expect(heap.check() == nil, "heapCheck after the growth workload", 0)
  e.expect(frames.checkInvariants() == nil, "page invariants after the growth workload", 0)
}

/// Every page of `[pointer, pointer + bytes)` belongs to `owner` in the page array.
func pagesOwned(_ frames: PageFrameAllocator, _ pointer: UnsafeMutableRawPointer, bytes: Int, by owner: PageOwner) -> Bool {
  var offset = 0
  while offset < bytes {
    if frames.owner(ofPhysical: frames.physical(of: pointer + offset)) != owner { return false }
    offset += Page.size
  }
  return true
}

/// Bytes at every 4 KiB and the last byte of `[pointer, pointer + bytes)` equal `value`.
func sampledBytesEqual(_ pointer: UnsafeMutableRawPointer, bytes: Int, _ value: UInt8) -> Bool {
  guard bytes > 0 else { return true }
  var offset = 0
  while offset < bytes {
    if pointer.load(fromByteOffset: offset, as: UInt8.self) != value { return false }
    offset += Page.size - 1
  }
  return pointer.load(fromByteOffset: bytes - 1, as: UInt8.self) == value
}

func kernelMemoryScenarios() -> [Scenario] {
  [
    Scenario("kmem.growth_interleaved_1000", memoryBytes: ScenarioMemory.machineBytes) { memory, e in
      expectGrowthUntilExhaustion(.interleaved1000, memory, &e)
    },
    Scenario("kmem.growth_interleaved_2048", memoryBytes: ScenarioMemory.machineBytes) { memory, e in
      expectGrowthUntilExhaustion(.interleaved2048, memory, &e)
    },
    Scenario("kmem.growth_random_16_32k", memoryBytes: ScenarioMemory.machineBytes) { memory, e in
      expectGrowthUntilExhaustion(.random16To32k, memory, &e)
    },
    Scenario("kmem.large_requests", memoryBytes: ScenarioMemory.machineBytes) { memory, e in
      // RAM/16 and RAM/4: 64 MiB and 256 MiB on a 1 GiB machine, both beyond order 10.
      guard let (frames, heap) = makeMachine(memory, &e) else { return }
      let startFree = frames.freePageCount
      let smallBytes = memory.bytes / 16, bigBytes = memory.bytes / 4
      guard let a = heap.allocate(smallBytes), let b = heap.allocate(bigBytes) else {
        return e.expect(false, "a large request failed right after memInit", UInt(memory.bytes))
      }
      e.expect(Page.isAligned(frames.physical(of: a)) && Page.isAligned(frames.physical(of: b)), "large allocations are page aligned", 0)
      e.expect(pagesOwned(frames, a, bytes: smallBytes, by: .heapLarge) && pagesOwned(frames, b, bytes: bigBytes, by: .heapLarge),
        "every page of a large allocation is .heapLarge in the page array", 0)
      e.expect(heap.statistics.claimedBytes == 1 << 20 && heap.statistics.largeAllocations == 2, "large requests do not grow the arenas", 0)
      e.expect((try? heap.usableSize(a)) == smallBytes, "usable size of a large allocation", 0)
      a.initializeMemory(as: UInt8.self, repeating: 0xA5, count: smallBytes)
      b.initializeMemory(as: UInt8.self, repeating: 0x5A, count: bigBytes)
      e.expect(sampledBytesEqual(a, bytes: smallBytes, 0xA5) && sampledBytesEqual(b, bytes: bigBytes, 0x5A), "large allocations keep their contents", 0)
      expectFreeThrows(heap, a + Page.size, .interiorPointer, &e, "a page inside a large allocation", detail: 1)
      expectFreeThrows(heap, a + 16, .interiorPointer, &e, "16 bytes into a large allocation", detail: 2)
      // krealloc keeps the contents when it moves a large allocation to a smaller block.
      let moved = try? heap.reallocate(a, to: 1000)
      e.expect(moved != nil && sampledBytesEqual(moved!, bytes: 1000, 0xA5), "realloc of a large allocation keeps its contents", 0)
      expectFreeThrows(heap, a, .doubleFree, &e, "a large allocation freed twice", detail: 3)
      try? heap.deallocate(moved)
      try? heap.deallocate(b)
      heap.releaseEmptySlabs()
      e.expect(frames.freePageCount == startFree && heap.statistics.largeAllocations == 0, "every page back after kfree", UInt(frames.freePageCount))
      // The page-level API beyond order 10: 1.5 and 4.25 runs of 4 MiB.
      for pages in [1536, 4352] where pages * 4 < frames.pageCount {
        let run = frames.allocContiguous(pages: pages, zeroed: false)
        e.expect(run != nil, "allocContiguous beyond order 10", UInt(pages))
        guard let run else { continue }
        e.expect(pagesOwned(frames, run, bytes: pages << Page.shift, by: .allocated), "contiguous run owned page by page", UInt(pages))
        do throws(PageFrameError) {
          try frames.freeContiguous(run, pages: pages - 1)
          e.expect(false, "freeContiguous with the wrong count accepted", UInt(pages))
        } catch {
          e.expect(error.reason == .notRunStart, "wrong count is notRunStart", UInt(pages))
        }
        do throws(PageFrameError) { try frames.freeContiguous(run, pages: pages) } catch { e.expect(false, "freeContiguous refused", UInt(pages)) }
      }
      e.expect(frames.freePageCount == startFree && heap.check() == nil && frames.checkInvariants() == nil, "nothing lost", 0)
    },
    Scenario("kmem.give_back_hysteresis", memoryBytes: ScenarioMemory.machineBytes) { memory, e in
      // A heap filled to its last bytes, then one allocation that needs growth, freed
      // and made again 100 times: the spare arena stays, so no page run changes hands.
      guard let (frames, heap) = makeMachine(memory, &e) else { return }
      let startFree = frames.freePageCount
      var fill: [UnsafeMutableRawPointer] = []
      // TLSF blocks (above the slab limit) until no 6000-byte block fits any more.
      while heap.statistics.largestFreeBlock >= 6400, let p = heap.allocate(6000) { fill.append(p) }
      e.expect(heap.statistics.arenas == 1, "the initial arena filled without growth", UInt(heap.statistics.arenas))
      let first = heap.allocate(8000)
      let grownFree = frames.freePageCount
      e.expect(first != nil && heap.statistics.arenas == 2 && grownFree < startFree, "the heap grew by one run", UInt(grownFree))
      try? heap.deallocate(first)
      var steady = true
      for _ in 0..<100 {
        let p = heap.allocate(8000)
        if p == nil || frames.freePageCount != grownFree { steady = false }
        try? heap.deallocate(p)
        if frames.freePageCount != grownFree || heap.statistics.arenas != 2 { steady = false }
      }
      e.expect(steady, "an oscillating allocation took or returned page runs", UInt(frames.freePageCount))
      for p in fill { try? heap.deallocate(p) }
      e.expect(heap.statistics.arenas == 1 && frames.freePageCount == startFree, "the spare goes back once the heap has room", UInt(frames.freePageCount))
      e.expect(heap.check() == nil && frames.checkInvariants() == nil, "heap and pages intact", 0)
    },
    Scenario("kmem.ownership_from_page_entries") { memory, e in
      guard let (frames, heap) = makeMachine(memory, &e) else { return }
      // A second heap over the same page frames: each refuses the other's pointers.
      guard let otherStart = frames.allocPages(order: 5, zeroed: false),
        let other = Heap(start: otherStart, size: 32 * Page.size, zeroFill: memory.zeroFill, frames: frames, slots: scenarioSlots)
      else { return e.expect(false, "second heap", 0) }
      let big = heap.allocate(200 << 10)!
      let grown = other.allocate(100 << 10)!
      e.expect(frames.owner(ofPhysical: frames.physical(of: grown)) == .heap, "growth arena pages are .heap", 0)
      expectRefused(heap, grown, .outsideHeap, &e, "another heap's growth arena")
      expectFreeThrows(other, big, .outsideHeap, &e, "another heap's large allocation", detail: 0)
      let page = frames.allocPage()!
      expectRefused(heap, page, .outsideHeap, &e, "a page from allocPage")
      expectRefused(heap, frames.pointer(toPhysical: simulatedBase + 0x10_0000), .outsideHeap, &e, "a kernel page")
      expectRefused(heap, frames.pointer(toPhysical: simulatedBase + UInt(memory.bytes)), .outsideHeap, &e, "past RAM")
      // The page allocator refuses heap pages, whoever asks.
      expectFreeRefused(frames, grown - 32, .wrongOwner, &e, "freePage of a heap growth page")
      expectFreeRefused(frames, big, .wrongOwner, &e, "freePage of a large allocation")
      let initialArena = frames.physical(of: UnsafeMutableRawPointer(bitPattern: heap.arenaRanges[0].start)!)
      expectFreeRefused(frames, frames.pointer(toPhysical: Page.roundDown(initialArena)), .wrongOwner, &e, "freePage of an initial heap page")
      try? frames.freePage(page)
      try? heap.deallocate(big)
      try? other.deallocate(grown)
      try? frames.freePages(otherStart, order: 5)
      e.expect(heap.check() == nil && other.check() == nil && frames.checkInvariants() == nil, "refusals changed nothing", 0)
    },
  ]
}
