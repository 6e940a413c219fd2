import KernelMemory
import Foundation
import KernelHeap
import KernelSync
import MemInit
import PageFrames
import Scenarios
import Testing

/// The SMP stress of the test kernel (`SMPStress`, shared code) with real threads
/// standing in for CPUs, over one simulated 256 MiB machine: every allocator entry
/// point from every thread at once, a quarter of the frees crossing threads. Nothing
/// may be lost or handed out twice: at the end the page counts, the free page count
/// and the heap's used bytes equal their values from before, and every check passes.
@Suite struct SMPStressTests {
  static let base: UInt = 0x4000_0000
  /// Operations per thread.
  static let operations = 250_000

  @Test("threads allocate and free across each other; nothing is lost", arguments: [2, 4, 8])
  func stress(threads: Int) throws {
    let ram = SimulatedRAM(bytes: 256 << 20)
    let config = MemInitConfig(
      ramBase: Self.base, ramSize: UInt(ram.bytes), kernelStart: Self.base + 0x20_0000, kernelEnd: Self.base + 0x21_0000,
      directMapOffset: Int(bitPattern: ram.base) - Int(bitPattern: Self.base), zeroFill: hostZeroFill)
    let memory = try KernelMemory(config, layout: try planLayout(config))
    let heapPart = memory.heap, framesPart = memory.frames
    let heap = try #require(heapPart), frames = try #require(framesPart)
    let cache = try #require(ObjectCache(heap: heap, objectSize: SMPStress.cacheObjectSize))
    let shared = UnsafeMutableRawPointer.allocate(byteCount: SMPStress.sharedBytes(cpus: threads), alignment: 64)
    defer { shared.deallocate() }
    let stress = SMPStress(memory: shared, cpus: threads)

    // Independent reference: the figures of a quiet machine, taken before any thread runs.
    memory.drainCaches()
    let before = SMPStress.QuietFigures(heap: heap, frames: frames)

    let outcomes = UnsafeMutablePointer<SMPStressOutcome>.allocate(capacity: threads)
    outcomes.initialize(repeating: SMPStressOutcome(), count: threads)
    defer { outcomes.deallocate() }
    // Real threads (not tasks): each is its own CPU number, preempted like a core is not.
    let done = DispatchGroup()
    for cpu in 0..<threads {
      done.enter()
      Thread.detachNewThread {
        outcomes[cpu] = stress.run(cpu: cpu, heap: heap, frames: frames, cache: cache, seed: 0x5EED + UInt64(threads), operations: Self.operations)
        done.leave()
      }
    }
    done.wait()

    memory.drainCaches()
    var e = Expectations()
    let total = SMPStress.verify(
      UnsafeBufferPointer(start: outcomes, count: threads), operations: Self.operations,
      before: before, heap: heap, frames: frames, cache: cache, &e)
    #expect(e.passed, "\(e.failures) of \(e.checks) checks failed, first: \(e.firstFailure) \(e.firstValue)")
    #expect(total.crossFrees > 0)
  }
}

/// Bad input from two CPUs at once: both free the same pages, the same kmalloc objects
/// and the same object-cache objects. Each free succeeds exactly once; the other CPU
/// gets the double-free outcome (even when the first free emptied a slab and gave its
/// pages back in between), and the structures end as if each had been freed once.
@Suite struct ConcurrentDoubleFreeTests {
  @Test("two threads free the same 2,000 pages, kmalloc and cache objects: one wins each, the other gets a double free")
  func doubleFrees() throws {
    let ram = SimulatedRAM(bytes: 64 << 20)
    let base = SMPStressTests.base
    let config = MemInitConfig(
      ramBase: base, ramSize: UInt(ram.bytes), kernelStart: base + 0x20_0000, kernelEnd: base + 0x21_0000,
      directMapOffset: Int(bitPattern: ram.base) - Int(bitPattern: base), zeroFill: hostZeroFill)
    let memory = try KernelMemory(config, layout: try planLayout(config))
    let heapPart = memory.heap, framesPart = memory.frames
    let heap = try #require(heapPart), frames = try #require(framesPart)
    let cache = try #require(ObjectCache(heap: heap, objectSize: 80))
    let count = 2000, kinds = 3
    let pointers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: kinds * count)
    defer { pointers.deallocate() }
    // Per thread: frees that succeeded, refused as double frees, refused otherwise.
    let tallies = UnsafeMutablePointer<Int>.allocate(capacity: 6)
    defer { tallies.deallocate() }
    // Rounds: the interleavings differ from one to the next.
    for _ in 0..<4 {
      memory.drainCaches()
      let freeBefore = frames.freePageCount, usedBefore = heap.statistics.usedBytes
      for index in 0..<count {
        pointers[index] = frames.allocPage()
        pointers[count + index] = heap.allocate(16 + index % 500)
        pointers[2 * count + index] = cache.allocate()
      }
      tallies.initialize(repeating: 0, count: 6)
      let done = DispatchGroup()
      for thread in 0..<2 {
        done.enter()
        Thread.detachNewThread {
          for index in 0..<(kinds * count) {
            guard let pointer = pointers[index] else { continue }
            var outcome = 0
            switch index / count {
            case 0:
              do throws(PageFrameError) { try frames.freePage(pointer) } catch { outcome = error.reason == .notAllocated ? 1 : 2 }
            case 1:
              do throws(HeapError) { try heap.deallocate(pointer) } catch { outcome = error.reason == .doubleFree ? 1 : 2 }
            default:
              do throws(HeapError) { try cache.free(pointer) } catch { outcome = error.reason == .doubleFree ? 1 : 2 }
            }
            tallies[thread * 3 + outcome] += 1
          }
          done.leave()
        }
      }
      done.wait()
      // Each pointer was freed exactly once; every other attempt was a double free.
      #expect(tallies[0] + tallies[3] == kinds * count)
      #expect(tallies[1] + tallies[4] == kinds * count)
      #expect(tallies[2] == 0 && tallies[5] == 0)
      cache.shrink()
      memory.drainCaches()
      #expect(frames.freePageCount == freeBefore)
      #expect(heap.statistics.usedBytes == usedBefore)
      #expect(cache.statistics?.liveObjects == 0)
      #expect(frames.checkInvariants() == nil)
      #expect(heap.check() == nil)
    }
  }
}
