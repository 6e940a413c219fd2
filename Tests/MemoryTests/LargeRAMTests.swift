import KernelMemory
import KernelHeap
import MemInit
import PageFrames
import Scenarios
import Testing

/// memInit's layout and the page allocator over simulated RAM of real sizes.
struct LargeRAMTests {
  static let sizes: [UInt] = [128 << 20, 1 << 30, 4 << 30]
  static let ramBase: UInt = 0x4000_0000

  func config(_ ram: SimulatedRAM, size: UInt) -> MemInitConfig {
    MemInitConfig(
      ramBase: Self.ramBase, ramSize: size, kernelStart: Self.ramBase + 0x20_0000, kernelEnd: Self.ramBase + 0x21_c000,
      dtbStart: Self.ramBase, dtbEnd: Self.ramBase + 0x10_0000,
      directMapOffset: Int(bitPattern: ram.base) - Int(bitPattern: Self.ramBase), zeroFill: hostZeroFill)
  }

  @Test("reservation boundaries are exact", arguments: sizes)
  func boundaries(size: UInt) throws {
    let ram = SimulatedRAM(bytes: Int(size))
    let config = config(ram, size: size)
    let layout = try planLayout(config)
    let frames = try buildPageFrames(config, layout)
    let pages = Int(size >> 12)
    #expect(layout.pageCount == pages)
    #expect(layout.metadataStart == config.kernelEnd)
    // 16 bytes per page, plus the allocator's state (well under a page) in front.
    #expect(layout.metadataEnd - layout.metadataStart == UInt(pages * 16 + 4096))
    #expect(layout.heapStart == layout.metadataEnd && layout.heapEnd == layout.heapStart + 0x10_0000)
    #expect(frames.owner(ofPhysical: Self.ramBase) == .deviceTree)
    #expect(frames.owner(ofPhysical: Self.ramBase + 0x10_0000) == .firmware)
    #expect(frames.owner(ofPhysical: config.kernelStart - 4096) == .firmware)
    #expect(frames.owner(ofPhysical: config.kernelStart) == .kernel)
    #expect(frames.owner(ofPhysical: config.kernelEnd - 4096) == .kernel)
    #expect(frames.owner(ofPhysical: layout.metadataStart) == .metadata)
    #expect(frames.owner(ofPhysical: layout.metadataEnd - 4096) == .metadata)
    #expect(frames.owner(ofPhysical: layout.heapStart) == .heap)
    #expect(frames.owner(ofPhysical: layout.heapEnd - 4096) == .heap)
    #expect(frames.owner(ofPhysical: layout.heapEnd) == .free)
    #expect(frames.owner(ofPhysical: layout.ramEnd - 4096) == .free)
    #expect(frames.owner(ofPhysical: layout.ramEnd) == nil)
    #expect(frames.count(.kernel) == 0x1c && frames.count(.heap) == 256 && frames.count(.deviceTree) == 256)
    #expect(frames.count(.metadata) == Int(layout.metadataEnd - layout.metadataStart) >> 12)
    #expect(frames.checkInvariants() == nil)
    // The overlap regression: the heap shares nothing with the array, and no heap
    // page is on a free list (checkInvariants walks the lists; owners say heap).
    let arrayLastByte = layout.metadataStart + UInt(pages * 16) - 1
    #expect(layout.heapStart > arrayLastByte)
    var heapPagesOwned = true
    for address in stride(from: layout.heapStart, to: layout.heapEnd, by: 4096) where frames.owner(ofPhysical: address) != .heap {
      heapPagesOwned = false
    }
    #expect(heapPagesOwned)
  }

  @Test("accounting identity after every operation of a random sequence", arguments: sizes)
  func randomAccounting(size: UInt) throws {
    let ram = SimulatedRAM(bytes: Int(size))
    let config = config(ram, size: size)
    var frames = try buildPageFrames(config, try planLayout(config))
    let total = frames.pageCount
    let initialFree = frames.freePageCount
    var rng = SplitMix(seed: UInt64(size))
    var live: [(UnsafeMutableRawPointer, Int)] = []
    for step in 0..<5_000 {
      if live.isEmpty || rng.next() % 2 == 0 {
        let order = Int(rng.next() % 11)
        if let run = frames.allocPages(order: order, zeroed: false) { live.append((run, order)) }
      } else {
        let (run, order) = live.remove(at: Int(rng.next() % UInt64(live.count)))
        try frames.freePages(run, order: order)
      }
      var reserved = 0
      for owner in PageOwner.allCases where owner != .free && owner != .allocated { reserved += frames.count(owner) }
      let identity = frames.freePageCount + frames.count(.allocated) + reserved == total
      #expect(identity, "step \(step)")
      if !identity { break }
    }
    #expect(frames.checkInvariants() == nil)
    for (run, order) in live { try frames.freePages(run, order: order) }
    #expect(frames.freePageCount == initialFree)
    #expect(frames.checkInvariants() == nil)
  }

  @Test("every bad free is refused and changes nothing")
  func badFrees() throws {
    let size: UInt = 128 << 20
    let ram = SimulatedRAM(bytes: Int(size))
    let config = config(ram, size: size)
    let layout = try planLayout(config)
    var frames = try buildPageFrames(config, layout)
    let before = frames.freePageCount
    func refused(_ physical: UInt, _ reason: PageFrameError.Reason) {
      #expect(throws: PageFrameError(reason, physical)) { try frames.freePage(frames.pointer(toPhysical: physical)) }
    }
    refused(Self.ramBase, .reserved)  // DTB
    refused(Self.ramBase + 0x10_0000, .reserved)  // firmware
    refused(config.kernelStart, .reserved)
    refused(layout.metadataStart, .reserved)
    refused(layout.heapEnd, .notAllocated)  // a free page: double free
    refused(layout.heapEnd + 1, .misaligned)
    refused(layout.ramEnd, .outsideRAM)
    refused(Self.ramBase - 4096, .outsideRAM)
    let page = frames.allocPage()!
    try frames.freePage(page)
    refused(frames.physical(of: page), .notAllocated)
    refused(layout.heapStart, .wrongOwner)  // the initial heap's pages belong to the heap
    #expect(frames.freePageCount == before)
    #expect(frames.checkInvariants() == nil)
  }

  @Test("memInit refuses RAM smaller than kernel + array + heap")
  func ramTooSmall() {
    let ram = SimulatedRAM(bytes: 4 << 20)
    let small = config(ram, size: 0x30_0000)
    do {
      _ = try planLayout(small)
      Issue.record("RAM smaller than kernel + array + heap accepted")
    } catch {
      // Needed: the array for 768 pages and 1 MiB of heap, page rounded; left: the RAM
      // after the kernel's end.
      let array = UInt((PageFrameAllocator.metadataBytes(pageCount: 0x300) + 4095) & ~4095)
      #expect(error == MemInitError(.ramTooSmall, Self.ramBase + 0x30_0000, needed: array + (1 << 20), available: 0x30_0000 - 0x21_c000))
    }
    let enough = config(ram, size: 0x40_0000)
    #expect(throws: Never.self) { try planLayout(enough) }
  }
}

/// The whole-machine scenarios at the sizes the issue names: growth until exhaustion
/// and large requests (64 MiB and 256 MiB) over 1 GiB of simulated RAM.
struct OneGiBMachineTests {
  static let names = ["kmem.growth_interleaved_1000", "kmem.growth_interleaved_2048", "kmem.growth_random_16_32k", "kmem.large_requests"]

  @Test("whole-machine scenario over 1 GiB", arguments: names)
  func machine(_ name: String) throws {
    let scenario = try #require(allScenarios().first { "\($0.name)" == name })
    let ram = SimulatedRAM(bytes: 1 << 30)
    var expectations = Expectations()
    scenario.run(ram.scenarioMemory(seed: 7), &expectations)
    #expect(expectations.checks > 0)
    #expect(expectations.passed, "\(name) at 1 GiB: \(expectations.firstFailure) (value \(expectations.firstValue))")
  }
}
