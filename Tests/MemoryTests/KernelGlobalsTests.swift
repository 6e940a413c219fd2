import KernelHeap
import MemInit
import PageFrames
import Testing

nonisolated(unsafe) private var reports: [BadInputReport] = []

/// memInit's wiring of the kernel globals and the bad-input hook, on the host.
/// Serialized: these tests share kernelPageFrames, kernelHeap and badInputHandler.
@Suite(.serialized)
struct KernelGlobalsTests {
  @Test("memInit sets up the page frames, then the heap right after the array")
  func memInitWiring() throws {
    let ram = SimulatedRAM(bytes: 128 << 20)
    let base: UInt = 0x4000_0000
    let config = MemInitConfig(
      ramBase: base, ramSize: 128 << 20, kernelStart: base + 0x20_0000, kernelEnd: base + 0x21_0000,
      directMapOffset: Int(bitPattern: ram.base) - Int(bitPattern: base), zeroFill: hostZeroFill)
    let layout = try memInit(config)
    let frames = try #require(kernelPageFrames)
    let heap = try #require(kernelHeap)
    #expect(heap.arenaRanges.first!.start > UInt(bitPattern: ram.base) + UInt(layout.heapStart - base))
    #expect(heap.statistics.claimedBytes == 1 << 20)
    let p = try #require(kmalloc(100))
    #expect(frames.owner(ofPhysical: frames.physical(of: p)) == .heap)
    kfree(p)
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
    #expect(reports.map { "\($0.function)" } == ["kfree", "kfree", "freePage", "freePage"])
    #expect(reports.map { "\($0.reason)" } == [
      "bad header (interior pointer or overwritten header)", "double free", "reserved page", "page not allocated (double free)",
    ])
    #expect(heapCheck() == nil)
    #expect(kernelPageFrames!.checkInvariants() == nil)
    let zeroA = try #require(kmalloc(0)), zeroB = try #require(kmalloc(0))
    let usable = try kernelHeap!.usableSize(zeroA)
    #expect(zeroA != zeroB && usable == 16)
    kfree(zeroA)
    kfree(zeroB)
    #expect(kmalloc(UInt32.max) == nil)
    kernelHeap = nil
    kernelPageFrames = nil
  }
}
