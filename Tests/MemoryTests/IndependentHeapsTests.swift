import KernelMemory
import KernelHeap
import MemInit
import PageFrames
import Scenarios
import Testing

/// Several kernel-memory objects, each with its own page frames and heap, in one test
/// process. Nothing here is serialized: no allocator depends on a global.
struct IndependentHeapsTests {
  static let base: UInt = 0x4000_0000

  func machine(_ ram: SimulatedRAM) throws -> KernelMemory {
    let config = MemInitConfig(
      ramBase: Self.base, ramSize: UInt(ram.bytes), kernelStart: Self.base + 0x20_0000, kernelEnd: Self.base + 0x21_0000,
      directMapOffset: Int(bitPattern: ram.base) - Int(bitPattern: Self.base), zeroFill: hostZeroFill)
    return try KernelMemory(config, layout: try planLayout(config))
  }

  @Test("four machines interleaved: each heap grows from its own pages and refuses the others' pointers")
  func interleaved() throws {
    let rams = (0..<4).map { _ in SimulatedRAM(bytes: 32 << 20) }
    var heaps: [Heap] = []
    var frames: [PageFrameAllocator] = []
    for ram in rams {
      let memory = try machine(ram)
      let heap = memory.heap, pages = memory.frames
      heaps.append(try #require(heap))
      frames.append(try #require(pages))
    }
    let startFree = frames.map(\.freePageCount)
    var live: [[UnsafeMutableRawPointer]] = Array(repeating: [], count: 4)
    // 5 MB per heap in 5000-byte TLSF blocks plus one large request each: every heap grows.
    for round in 0..<1000 {
      for i in 0..<4 { live[i].append(try #require(heaps[i].allocate(round == 0 ? 300 << 10 : 5000))) }
    }
    for i in 0..<4 {
      #expect(heaps[i].statistics.arenas > 1)
      #expect(frames[i].count(.heap) > 256 && frames[i].count(.heapLarge) == 75)
      let other = (i + 1) % 4
      #expect(throws: HeapError(.outsideHeap, UInt(bitPattern: live[other].last!))) { try heaps[i].deallocate(live[other].last!) }
      #expect(throws: HeapError(.outsideHeap, UInt(bitPattern: live[other][0]))) { try heaps[i].deallocate(live[other][0]) }
    }
    for i in 0..<4 {
      for p in live[i] { try heaps[i].deallocate(p) }
      #expect(heaps[i].check() == nil && frames[i].checkInvariants() == nil)
      #expect(frames[i].freePageCount == startFree[i])
      #expect(heaps[i].statistics.arenas == 1)
    }
  }

  @Test("growth workloads on separate machines, in parallel", arguments: 1...6)
  func parallelGrowth(seed: Int) throws {
    let ram = SimulatedRAM(bytes: 32 << 20)
    let memory = try machine(ram)
    let maybeFrames = memory.frames, maybeHeap = memory.heap
    let frames = try #require(maybeFrames), heap = try #require(maybeHeap)
    let workload = GrowthWorkload.allCases[seed % 3]
    let outcome = runGrowthWorkload(workload, frames: frames, heap: heap, seed: UInt64(seed))
    #expect(outcome.intact)
    #expect(outcome.freePagesAtFirstNil * 100 <= frames.pageCount)
    #expect(outcome.endFreePages == outcome.startFreePages)
    #expect(heap.check() == nil && frames.checkInvariants() == nil)
  }
}
