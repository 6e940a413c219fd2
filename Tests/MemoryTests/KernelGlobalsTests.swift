import KernelMemory
import KernelHeap
import MemInit
import PageFrames
import Testing

nonisolated(unsafe) private var reports: [BadInputReport] = []

private func reported() -> [String] { reports.map { "\($0.function): \($0.reason)" } }

/// memInit's wiring of `kernelMemory` and the bad-input hook, on the host. Serialized:
/// these tests install the one kernel-wide object and handler; every other test uses
/// objects of its own.
@Suite(.serialized)
struct KernelGlobalsTests {
  static let base: UInt = 0x4000_0000

  func config(_ ram: SimulatedRAM) -> MemInitConfig {
    MemInitConfig(
      ramBase: Self.base, ramSize: UInt(ram.bytes), kernelStart: Self.base + 0x20_0000, kernelEnd: Self.base + 0x21_0000,
      directMapOffset: Int(bitPattern: ram.base) - Int(bitPattern: Self.base), zeroFill: hostZeroFill)
  }

  @Test("every entry point before memInit, and after a memInit that failed, reports 'not set up'")
  func beforeMemInit() throws {
    reports = []
    badInputHandler = { reports.append($0) }
    defer { badInputHandler = { _ in } }
    kernelMemory = KernelMemory()
    let page = UnsafeMutableRawPointer(bitPattern: 0x1000)!
    let notSetUp = "\(KernelMemory.notSetUpReason)"
    #expect(kmalloc(16) == nil && kcalloc(1, 1) == nil && kmallocAligned(64, 64) == nil && krealloc(nil, 8) == nil)
    kfree(page)
    #expect(allocPage() == nil && allocPages(order: 1) == nil && allocContiguous(pages: 3) == nil)
    freePage(page)
    freePages(page, order: 1)
    freeContiguous(page, pages: 3)
    shrinkContiguous(page, pages: 3, keep: 1)
    #expect(reported() == ["kmalloc", "kcalloc", "kmallocAligned", "krealloc", "kfree", "allocPage", "allocPages",
      "allocContiguous", "freePage", "freePages", "freeContiguous", "shrinkContiguous"].map { "\($0): \(notSetUp)" })
    #expect(heapCheck().map { "\($0.reason)" } == notSetUp)

    // A memInit that throws (a heap size that cannot hold a heap) leaves it not set up.
    let ram = SimulatedRAM(bytes: 16 << 20)
    var bad = config(ram)
    bad.heapBytes = 0
    #expect(throws: MemInitError(.heapTooSmall, 0)) { try memInit(bad) }
    let ready = kernelMemory.isReady
    #expect(!ready)
    reports = []
    #expect(kmalloc(16) == nil)
    #expect(reported() == ["kmalloc: \(notSetUp)"])
  }

  @Test("memInit sets up the page frames, then the heap right after the array")
  func memInitWiring() throws {
    let ram = SimulatedRAM(bytes: 128 << 20)
    let config = config(ram)
    let layout = try memInit(config)
    defer { kernelMemory = KernelMemory() }
    let maybeFrames = kernelMemory.frames, maybeHeap = kernelMemory.heap
    let frames = try #require(maybeFrames)
    let heap = try #require(maybeHeap)
    // One owner: a second memInit is refused, over other RAM too, and the first stays.
    let other = SimulatedRAM(bytes: 64 << 20)
    #expect(throws: MemInitError(.alreadySetUp, 0)) { try memInit(self.config(other)) }
    let installedAgain = installKernelMemory(KernelMemory())
    #expect(!installedAgain)
    #expect(kernelMemory.frames?.entries == frames.entries && kernelMemory.frames?.pageCount == (128 << 20) >> 12)
    #expect(heap.arenaRanges.first!.start > UInt(bitPattern: ram.base) + UInt(layout.heapStart - Self.base))
    #expect(heap.statistics.claimedBytes == 1 << 20)
    // Small requests are slab objects, medium ones TLSF blocks in the initial arena.
    // Any Int size: nil for what cannot be had, never a trap (a machine of 32 MiB or so).
    for size in [-1, Int.min, Int.max, Int.max - 15, Int(UInt32.max), Int(UInt32.max) + 1, 1 << 40, 1 << 62] {
      #expect(kmalloc(size) == nil && krealloc(nil, size) == nil && kmallocAligned(size, 4096) == nil && kcalloc(size, 2) == nil)
    }
    let p = try #require(kmalloc(100))
    #expect(frames.owner(ofPhysical: frames.physical(of: p)) == .slab)
    kfree(p)
    let medium = try #require(kmalloc(6000))
    #expect(frames.owner(ofPhysical: frames.physical(of: medium)) == .heap)
    kfree(medium)
    let map = MemoryMap(frames)
    #expect(map.totalPages == frames.pageCount)
    #expect(map[0].owner == .firmware && map[1].owner == .kernel && map[2].owner == .metadata && map[3].owner == .heap)

    // Bad input reaches the hook with the function's name; nothing changes.
    reports = []
    badInputHandler = { reports.append($0) }
    defer { badInputHandler = { _ in } }
    let q = try #require(kmalloc(64))
    kfree(q + 16)
    kfree(q)
    kfree(q)
    freePage(frames.pointer(toPhysical: config.kernelStart))
    let page = try #require(allocPage())
    freePage(page)
    freePage(page)
    freePage(frames.pointer(toPhysical: layout.heapStart))  // the initial heap's first page
    let large = try #require(kmalloc(1 << 20))
    kfree(large + 4096)
    freePage(large)
    kfree(large)
    kfree(large)
    #expect(allocPages(order: 0, owner: .firmware) == nil && allocContiguous(pages: 2, owner: .free) == nil)
    #expect(allocPages(order: 11) == nil)
    #expect(reported() == [
      "kfree: pointer inside an allocation, not at its start", "kfree: double free", "freePage: reserved page",
      "freePage: page not allocated (double free)", "freePage: page owned by another allocator (heap, slab or page tables)",
      "kfree: pointer inside an allocation, not at its start",
      "freePage: page owned by another allocator (heap, slab or page tables)", "kfree: double free",
      "allocPages: owner not accepted for an allocation", "allocContiguous: owner not accepted for an allocation",
      "allocPages: order or page count out of range",
    ])
    #expect(reports.map(\.address) == [
      UInt(bitPattern: q + 16), UInt(bitPattern: q), UInt(config.kernelStart), frames.physical(of: page),
      UInt(layout.heapStart), UInt(bitPattern: large + 4096), frames.physical(of: large), UInt(bitPattern: large),
      UInt(PageOwner.firmware.rawValue), UInt(PageOwner.free.rawValue), 11,
    ])
    #expect(heapCheck() == nil)
    #expect(frames.checkInvariants() == nil)
    let zeroA = try #require(kmalloc(0)), zeroB = try #require(kmalloc(0))
    let usable = try heap.usableSize(zeroA)
    #expect(zeroA != zeroB && usable == 16)
    kfree(zeroA)
    kfree(zeroB)
    #expect(kmalloc(Int(UInt32.max)) == nil)
  }

  @Test("the kernel heap grows until RAM runs out and gives the pages back")
  func kernelHeapGrowsToRAM() throws {
    let ram = SimulatedRAM(bytes: 64 << 20)
    try memInit(config(ram))
    defer { kernelMemory = KernelMemory() }
    let maybeFrames = kernelMemory.frames
    let frames = try #require(maybeFrames)
    let startFree = frames.freePageCount
    var head: UnsafeMutableRawPointer? = nil
    var count = 0
    while let p = kmalloc(30_000) {
      p.storeBytes(of: head, as: UnsafeMutableRawPointer?.self)
      head = p
      count += 1
    }
    #expect(frames.freePageCount * 100 <= frames.pageCount)
    #expect(count > (60 << 20) / 30_016)
    while let p = head {
      head = p.load(as: UnsafeMutableRawPointer?.self)
      kfree(p)
    }
    #expect(frames.freePageCount == startFree && heapCheck() == nil)
  }
}
