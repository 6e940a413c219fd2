import KernelMemory
@testable import KernelHeap
import KernelSync
import MemInit
@testable import PageFrames
import Testing

/// An allocator entered again on a CPU that is inside it (an interrupt handler that
/// allocates or frees while its CPU holds an allocator lock) gets a defined refusal,
/// not a deadlock, and nothing changes. The locks are taken here as the interrupted
/// allocation would hold them.
@Suite struct ReentryTests {
  /// A machine over `ram`, set up as the other host tests set theirs up.
  func machine(_ ram: SimulatedRAM) throws -> KernelMemory { try IndependentHeapsTests().machine(ram) }

  @Test("page frames: with this CPU's cache lock held, alloc falls back on the buddy lists; with the global lock, nil; frees get `reentered`")
  func pageFrames() throws {
    let ram = SimulatedRAM(bytes: 32 << 20)
    let memory = try machine(ram)
    let part = memory.frames
    let frames = try #require(part)
    let cpu = CPU.current
    let page = try #require(frames.allocPage())
    let run = try #require(frames.allocPages(order: 2))
    let free = frames.freePageCount
    // The interrupted allocation holds this CPU's cache lock while the handler runs.
    let fallback = try #require(frames.cpuCache(ofCPU: cpu).withLock(cpu: cpu) { _ throws -> UnsafeMutableRawPointer? in
      // An order-0 allocation falls back on the buddy lists (their lock is free).
      let fallback = frames.allocPage()
      #expect(frames.freePageCount == free - 1)
      #expect(throws: PageFrameError(.reentered, frames.physical(of: page))) { try frames.freePage(page) }
      return fallback
    } ?? nil)
    try frames.freePage(fallback)
    _ = frames.buddy.withLock(cpu: cpu) { _ in
      #expect(frames.allocPages(order: 3) == nil)
      #expect(throws: PageFrameError(.reentered, frames.physical(of: run))) { try frames.freePages(run, order: 2) }
    }
    // Nothing changed: the same pages are free, both runs are still owned and free fine.
    #expect(frames.freePageCount == free)
    try frames.freePage(page)
    try frames.freePages(run, order: 2)
    #expect(frames.checkInvariants() == nil)
  }

  @Test("heap: with a size-class cache lock or the heap lock held, kmalloc gets nil and kfree `reentered`")
  func heap() throws {
    let ram = SimulatedRAM(bytes: 32 << 20)
    let memory = try machine(ram)
    let part = memory.heap
    let heap = try #require(part)
    let cpu = CPU.current
    let small = try #require(heap.allocate(48))
    let block = try #require(heap.allocate(5000))
    let used = heap.statistics.usedBytes
    let caches = try #require(heap.config.pointee.classCaches)
    let cache = heap.classCache(caches, (cpu & (heap.slots - 1)) * SlabClass.count + SlabClass.index(forRequest: 48))
    _ = cache.withLock(cpu: cpu) { _ in
      #expect(throws: HeapError(.reentered, UInt(bitPattern: small))) { try heap.deallocate(small) }
    }
    _ = heap.core.withLock(cpu: cpu) { _ in
      #expect(heap.allocate(5000) == nil)
      #expect(throws: HeapError(.reentered, UInt(bitPattern: block))) { try heap.deallocate(block) }
      #expect(heap.check()?.reason.description == "checked from inside the heap (lock held)")
    }
    #expect(heap.statistics.usedBytes == used)
    try heap.deallocate(small)
    try heap.deallocate(block)
    #expect(heap.check() == nil)
  }

  @Test("object caches: making a cache whose retired slot this CPU holds locked gets nil, and the lists stay whole")
  func objectCacheSlotHeld() throws {
    let ram = SimulatedRAM(bytes: 32 << 20)
    let memory = try machine(ram)
    let part = memory.heap
    let heap = try #require(part)
    let cpu = CPU.current
    let live = try #require(ObjectCache(heap: heap, objectSize: 64))
    let old = try #require(ObjectCache(heap: heap, objectSize: 64))
    try old.destroy()
    // The next cache would take the destroyed one's slot; its lock is held here.
    let refused = old.cache.withLock(cpu: cpu) { _ in ObjectCache(heap: heap, objectSize: 32) == nil }
    #expect(refused == true)
    #expect(heap.check() == nil)
    let next = try #require(ObjectCache(heap: heap, objectSize: 32))
    #expect(next.cache.address == old.cache.address)
    let object = try #require(next.allocate())
    try next.free(object)
    #expect(live.allocate() != nil)
    #expect(heap.check() == nil)
  }
}
