import MemInit
import PageFrames
import Testing

/// BootMemory's RAM ranges against a model that knows nothing of ranges: the set of pages
/// described. Ranges that touch or overlap are one stretch of RAM (as Linux's memblock
/// merges them), so a kernel image may straddle the boundary of two NUMA nodes, and every
/// RAM byte below the kernel down to the first hole is firmware's low memory.
struct RAMMergeTests {
  static let base: UInt = 0x4000_0000

  /// The maximal runs of consecutive pages in `pages`, as physical ranges from `base`.
  func runs(_ pages: Set<UInt>) -> [PhysicalRange] {
    var result: [PhysicalRange] = []
    for page in pages.sorted() {
      let start = Self.base + page * 4096
      if let last = result.last, last.end == start {
        result[result.count - 1].end = start + 4096
      } else {
        result.append(PhysicalRange(start: start, end: start + 4096))
      }
    }
    return result
  }

  @Test("ranges added in any order, touching, overlapping or nested, are the union of their pages")
  func mergeMatchesUnion() throws {
    var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next(_ bound: UInt) -> UInt {
      seed = seed &* 6364136223846793005 &+ 1442695040888963407
      return UInt(seed >> 33) % bound
    }
    for _ in 0..<500 {
      var memory = BootMemory()
      var pages = Set<UInt>()
      for _ in 0..<(1 + next(12)) {
        let first = next(96), count = 1 + next(24)
        try memory.addRAM(start: Self.base + first * 4096, size: count * 4096)
        pages.formUnion(first..<(first + count))
      }
      let actual = (0..<memory.ram.count).map { memory.ram[$0] }
      #expect(actual == runs(pages))
      #expect(memory.ram.totalPages == pages.count)
    }
  }

  @Test("a kernel image across the boundary of two touching ranges is laid out, every page accounted for")
  func kernelStraddlesBoundary() throws {
    let tests = BootMemoryTests()
    // Two NUMA nodes meeting at base + 0x21_0000, inside the kernel [0x20_0000, 0x22_0000).
    let ram: [(UInt, UInt)] = [(0, 0x21_0000), (0x21_0000, 30 << 20)]
    let reserved: [(UInt, UInt, PageOwner)] = [(0, 0x1000, .deviceTree)]
    try tests.expectExactlyFreePages(try tests.machine(ram: ram, reserved: reserved), ram: ram, reserved: reserved)
    // The same from a device tree: one memory node whose reg is split in two.
    var builder = DeviceTreeBuilder()
    builder.begin("")
    builder.cells("#address-cells", [2])
    builder.cells("#size-cells", [2])
    builder.begin("memory@40000000")
    builder.property("device_type", Array("memory".utf8) + [0])
    builder.reg([(0x4000_0000, 0x21_0000), (0x4021_0000, 30 << 20)])
    builder.end()
    builder.end()
    let (memory, summary) = try DeviceTreeTests().read(builder.build(), at: 0x4100_0000)
    #expect(summary.ramRanges == 2 && memory.ram.count == 1)
    #expect(memory.ram[0] == PhysicalRange(start: 0x4000_0000, end: 0x4000_0000 + 0x21_0000 + (30 << 20)))
  }

  @Test("a 2 MiB first node: the bytes between RAM's start and the kernel are firmware's, none handed out")
  func smallFirstNode() throws {
    let tests = BootMemoryTests()
    // QEMU virt with -numa and a 2 MiB first node: the DTB's 1 MiB at RAM's start, the
    // kernel at the start of the second node.
    let ram: [(UInt, UInt)] = [(0, 2 << 20), (2 << 20, 62 << 20)]
    let reserved: [(UInt, UInt, PageOwner)] = [(0, 1 << 20, .deviceTree)]
    let m = try tests.machine(ram: ram, reserved: reserved)
    let layout = try planLayout(m.config)
    let frames = try buildPageFrames(m.config, layout)
    var page = Self.base + (1 << 20)
    while page < BootMemoryTests.kernelStart {
      #expect(frames.owner(ofPhysical: page) == .firmware)
      page += 4096
    }
    try tests.expectExactlyFreePages(try tests.machine(ram: ram, reserved: reserved), ram: ram, reserved: reserved)
    // Below a hole the RAM is the description's to give: only the kernel's own stretch
    // is low memory.
    let holed: [(UInt, UInt)] = [(0, 1 << 20), ((1 << 20) + 0x1_0000, 62 << 20)]
    try tests.expectExactlyFreePages(try tests.machine(ram: holed), ram: holed, reserved: [])
  }

  @Test("exactly PageFrameAllocator.maximumPages (2^32 - 2) pages are accepted and laid out; one more is tooManyPages")
  func pageLimit() throws {
    let maximum = UInt(PageFrameAllocator.maximumPages)
    #expect(maximum == (1 << 32) - 2)
    var memory = BootMemory()
    try memory.addRAM(start: 1 << 40, size: (maximum - 16) * 4096)
    try memory.addRAM(start: 1 << 39, size: 16 * 4096)
    try memory.addRAM(start: 1 << 40, size: 4096)  // already RAM: merged, no page more
    #expect(memory.ram.totalPages == Int(maximum))
    #expect(throws: MemInitError(.tooManyPages, 0)) { try memory.addRAM(start: 0, size: 4096) }
    #expect(memory.ram.totalPages == Int(maximum))
    // planLayout touches no memory: the plan for the largest RAM accepted exists.
    let config = MemInitConfig(memory: memory, kernelStart: (1 << 40) + 0x20_0000, kernelEnd: (1 << 40) + 0x40_0000, zeroFill: hostZeroFill)
    let layout = try planLayout(config)
    #expect(layout.pageCount == Int(maximum))
    #expect(layout.metadataEnd - layout.metadataStart >= UInt(maximum) * 16)
  }
}
