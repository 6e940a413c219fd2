@testable import KernelHeap
import KernelSync
import KernelSyncAtomics
@testable import PageFrames
import Testing

/// Per-CPU slots sized from the CPUs: each structure gets the slot count it was made
/// with, up to `CPU.maximum` (64), and CPUs below it never share a slot.
@Suite struct PerCPUSlotsTests {
  static let base: UInt = 0x4000_0000

  /// `ram` as one RAM range at `base`.
  func ranges(_ ram: SimulatedRAM) -> PhysicalRanges {
    var ranges = PhysicalRanges()
    ranges.append(PhysicalRange(start: Self.base, end: Self.base + UInt(ram.bytes)))
    return ranges
  }

  /// Page frames with `slots` CPU slots over `ram`: the metadata at its start, the rest free.
  func frames(_ ram: SimulatedRAM, slots: Int) throws -> PageFrameAllocator {
    let pages = ram.bytes >> Page.shift
    let frames = try #require(PageFrameAllocator(
      ranges: ranges(ram),
      metadata: ram.base, directMapOffset: Int(bitPattern: ram.base) - Int(bitPattern: Self.base),
      zeroFill: hostZeroFill, slots: slots))
    let metadataEnd = Self.base + UInt((PageFrameAllocator.metadataBytes(pageCount: pages, slots: slots) + Page.size - 1) & ~(Page.size - 1))
    _ = try frames.reserve(start: Self.base, end: metadataEnd, as: .metadata).get()
    _ = try frames.release(start: metadataEnd, end: Self.base + UInt(ram.bytes)).get()
    return frames
  }

  /// Runs `body` as CPU `cpu` (a number no live thread has: far above the thread count),
  /// then gives the thread its own number back.
  func asCPU<R>(_ cpu: Int, _ body: () throws -> R) rethrows -> R {
    let mine = Int(ks_thread_cpu())
    CPU.bind(cpu)
    defer { CPU.bind(mine) }
    return try body()
  }

  @Test("slot counts: the power of two at or above the CPUs, 1 ... 64, against a reference loop")
  func slotCounts() {
    #expect(CPU.maximum >= 64)
    for cpus in -2...300 {
      var reference = 1
      while reference < cpus && reference < CPU.maximum { reference *= 2 }
      #expect(CPU.slotCount(forCPUs: cpus) == reference, "\(cpus) CPUs")
    }
  }

  @Test("page frames and heaps refuse a slot count that is not a power of two in 1 ... 64")
  func refusals() throws {
    let ram = SimulatedRAM(bytes: 8 << 20)
    for slots in [0, -1, 3, 12, 128] {
      #expect(PageFrameAllocator(
        ranges: ranges(ram),
        metadata: ram.base, directMapOffset: 0, zeroFill: hostZeroFill, slots: slots) == nil)
    }
    let frames = try frames(ram, slots: 8)
    let area = try #require(frames.allocContiguous(pages: 256))
    for slots in [0, 3, 128] {
      #expect(Heap(start: area, size: 1 << 20, zeroFill: hostZeroFill, frames: frames, slots: slots) == nil)
    }
  }

  @Test("64 slots: CPUs 1, 9, 33 and 63 (one slot with 8) each fill a page cache of their own, the others stay empty")
  func pageCachesDoNotAlias() throws {
    let ram = SimulatedRAM(bytes: 32 << 20)
    let frames = try frames(ram, slots: 64)
    #expect(frames.slots == 64)
    let far = 1 << 24   // a multiple of 64 above every live thread's number
    for cpu in [1, 9, 33, 63] {
      try asCPU(far + cpu) {
        let page = try #require(frames.allocPage())
        try frames.freePage(page)
      }
    }
    let me = CPU.current
    for slot in 0..<64 {
      let cached = frames.cpuCache(slot).withLock(cpu: me) { $0.count } ?? -1
      #expect((cached > 0) == [1, 9, 33, 63].contains(slot), "slot \(slot): \(cached) pages")
    }
    #expect(frames.checkInvariants() == nil)
  }

  @Test("64 slots: size-class objects of CPUs 1 and 9 come from different slabs; with 8 slots from one")
  func slabCachesDoNotAlias() throws {
    for slots in [64, 8] {
      let ram = SimulatedRAM(bytes: 32 << 20)
      let frames = try frames(ram, slots: slots)
      let area = try #require(frames.allocContiguous(pages: 256))
      let heap = try #require(Heap(start: area, size: 1 << 20, zeroFill: hostZeroFill, frames: frames, slots: slots))
      #expect(heap.slots == slots)
      let far = 1 << 24
      let first = try asCPU(far + 1) { try #require(heap.allocate(48)) }
      let second = try asCPU(far + 9) { try #require(heap.allocate(48)) }
      let samePage = UInt(bitPattern: first) >> UInt(Page.shift) == UInt(bitPattern: second) >> UInt(Page.shift)
      #expect(samePage == (slots == 8), "\(slots) slots")
      try asCPU(far + 9) { try heap.deallocate(first) }
      try heap.deallocate(second)
      #expect(heap.check() == nil)
    }
  }
}
