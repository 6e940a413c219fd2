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

    // Independent reference: the counts of a quiet machine, taken before any thread runs.
    memory.drainCaches()
    let freeBefore = frames.freePageCount
    let usedBefore = heap.statistics.usedBytes
    let allocatedBefore = frames.count(.allocated)

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

    var frees = 0, crossFrees = 0
    for cpu in 0..<threads {
      let outcome = outcomes[cpu]
      #expect(outcome.failures == 0, "thread \(cpu): \(outcome.failures) failures, first \(outcome.firstFailure) at \(outcome.firstValue)")
      #expect(outcome.operations == Self.operations)
      frees += outcome.frees
      crossFrees += outcome.crossFrees
    }
    // About a quarter of the frees were of another thread's objects.
    #expect(crossFrees * 5 >= frees, "cross-thread frees \(crossFrees) of \(frees)")

    memory.drainCaches()
    #expect(heap.check() == nil)
    #expect(frames.checkInvariants() == nil)
    #expect(frames.freePageCount == freeBefore)
    #expect(frames.count(.allocated) == allocatedBefore)
    #expect(heap.statistics.usedBytes == usedBefore)
    #expect(cache.statistics?.liveObjects == 0)
    var total = 0
    for owner in PageOwner.allCases { total += frames.count(owner) }
    #expect(total == frames.pageCount)
  }
}
