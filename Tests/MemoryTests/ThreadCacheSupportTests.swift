@testable import KernelHeap
import KernelSync
import KernelSyncAtomics
@testable import PageFrames
import Testing

/// What the preload library's per-thread cache asks of the heap (`Heap+ThreadCache.swift`):
/// an object's size class, batches taken and given back. Checked against the size
/// classes' definition (`SlabClass.objectSize`), `usableSize`, and the heap's own
/// statistics and invariant walk.
@Suite struct ThreadCacheSupportTests {
  static let base: UInt = 0x4000_0000

  /// Page frames over `ram` (the metadata at its start) and a heap of 1 MiB with 8 slots.
  func heap(_ ram: SimulatedRAM) throws -> Heap {
    var ranges = PhysicalRanges()
    ranges.append(PhysicalRange(start: Self.base, end: Self.base + UInt(ram.bytes)))
    let pages = ram.bytes >> Page.shift
    let frames = try #require(PageFrameAllocator(
      ranges: ranges, metadata: ram.base, directMapOffset: Int(bitPattern: ram.base) - Int(bitPattern: Self.base),
      zeroFill: hostZeroFill, slots: 8))
    let metadataEnd = Self.base + UInt((PageFrameAllocator.metadataBytes(pageCount: pages, slots: 8) + Page.size - 1) & ~(Page.size - 1))
    _ = try frames.reserve(start: Self.base, end: metadataEnd, as: .metadata).get()
    _ = try frames.release(start: metadataEnd, end: Self.base + UInt(ram.bytes)).get()
    let area = try #require(frames.allocContiguous(pages: 256))
    return try #require(Heap(start: area, size: 1 << 20, zeroFill: hostZeroFill, frames: frames, slots: 8))
  }

  /// The smallest class whose objects hold `size` bytes: a scan of the class sizes.
  func referenceClass(_ size: Int) -> Int {
    var sizeClass = 0
    while SlabClass.objectSize(sizeClass) < size { sizeClass += 1 }
    return sizeClass
  }

  @Test("sizeClass(ofObject:): every request size's object has the smallest class that holds it; -1 once freed")
  func classOfEveryObject() throws {
    let ram = SimulatedRAM(bytes: 64 << 20)
    let heap = try heap(ram)
    for size in 0...SlabClass.limit {
      let object = try #require(heap.allocate(size))
      let sizeClass = heap.sizeClass(ofObject: object)
      #expect(sizeClass == referenceClass(size), "size \(size)")
      #expect(try heap.usableSize(object) == SlabClass.objectSize(sizeClass), "size \(size)")
      try heap.deallocate(object)
      #expect(heap.sizeClass(ofObject: object) == -1, "size \(size), freed")
    }
    #expect(heap.check() == nil)
  }

  @Test("sizeClass(ofObject:) is -1 for interior pointers, TLSF blocks, large runs, object-cache objects, foreign memory")
  func notSizeClassObjects() throws {
    let ram = SimulatedRAM(bytes: 64 << 20)
    let heap = try heap(ram)
    let object = try #require(heap.allocate(100))
    #expect(heap.sizeClass(ofObject: object) == referenceClass(100))
    #expect(heap.sizeClass(ofObject: object + 16) == -1)
    #expect(heap.sizeClass(ofObject: object + 1) == -1)
    let block = try #require(heap.allocate(8000))
    #expect(heap.sizeClass(ofObject: block) == -1)
    let large = try #require(heap.allocate(Heap.largeRequestThreshold + 1))
    #expect(heap.sizeClass(ofObject: large) == -1)
    let cache = try #require(ObjectCache(heap: heap, objectSize: 64))
    let cached = try #require(cache.allocate())
    #expect(heap.sizeClass(ofObject: cached) == -1)
    var local = (0, 0)
    withUnsafeMutableBytes(of: &local) { bytes in #expect(heap.sizeClass(ofObject: bytes.baseAddress!) == -1) }
    try cache.free(cached)
    try heap.deallocate(large)
    try heap.deallocate(block)
    try heap.deallocate(object)
    #expect(heap.check() == nil)
  }

  @Test("takeObjects then returnObjects from another CPU: distinct live objects of the class, the heap's count back")
  func batches() throws {
    let ram = SimulatedRAM(bytes: 64 << 20)
    let heap = try heap(ram)
    let before = heap.statistics.slabObjects
    let buffer = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: 600)
    defer { buffer.deallocate() }
    for sizeClass in [0, 7, 20, SlabClass.count - 1] {
      let taken = heap.takeObjects(ofClass: sizeClass, into: buffer, count: 150)
      #expect(taken == 150)
      var seen = Set<UInt>()
      for index in 0..<taken {
        seen.insert(UInt(bitPattern: buffer[index]))
        #expect(heap.sizeClass(ofObject: buffer[index]) == sizeClass)
        #expect(try heap.usableSize(buffer[index]) == SlabClass.objectSize(sizeClass))
      }
      #expect(seen.count == taken)
      #expect(heap.statistics.slabObjects == before + taken)
      // Given back as another CPU (a thread that freed objects it did not allocate).
      let mine = Int(ks_thread_cpu())
      CPU.bind((1 << 24) + 3)
      var refusals = 0
      let freed = heap.returnObjects(buffer, count: taken) { _ in refusals += 1 }
      CPU.bind(mine)
      #expect(freed == taken && refusals == 0)
      #expect(heap.statistics.slabObjects == before)
      #expect(heap.check() == nil)
    }
    #expect(heap.takeObjects(ofClass: SlabClass.count, into: buffer, count: 1) == 0)
    #expect(heap.takeObjects(ofClass: -1, into: buffer, count: 1) == 0)
  }

  @Test("returnObjects: an object twice in a batch is freed once, the rest all the same")
  func doubleInBatch() throws {
    let ram = SimulatedRAM(bytes: 64 << 20)
    let heap = try heap(ram)
    let before = heap.statistics.slabObjects
    let buffer = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: 8)
    defer { buffer.deallocate() }
    #expect(heap.takeObjects(ofClass: 3, into: buffer, count: 6) == 6)
    buffer[6] = buffer[2]
    let block = try #require(heap.allocate(6000))
    buffer[7] = block
    var refusals: [HeapError] = []
    #expect(heap.returnObjects(buffer, count: 8) { refusals.append($0) } == 7)
    #expect(refusals == [HeapError(.doubleFree, UInt(bitPattern: buffer[2]))])
    #expect(heap.statistics.slabObjects == before)
    #expect(throws: HeapError.self) { try heap.deallocate(block) }
    #expect(heap.check() == nil)
  }
}
