import KernelMemory
import Foundation
@testable import KernelHeap
import KernelSync
import MemInit
import PageFrames
import Testing

/// Two races between lock paths, each with real threads standing in for CPUs. Both ran
/// with TSan in `make tsan-test` too.
@Suite struct RaceTests {
  /// A machine over `ram`, set up as the other host tests set theirs up.
  func machine(_ ram: SimulatedRAM) throws -> KernelMemory { try IndependentHeapsTests().machine(ram) }

  /// Runs `first` and `second` on two threads, released together by a barrier.
  func race(_ first: @escaping @Sendable () -> Void, _ second: @escaping @Sendable () -> Void) {
    let words = UnsafeMutablePointer<SpinBarrierWords>.allocate(capacity: 1)
    words.initialize(to: SpinBarrierWords())
    defer { words.deallocate() }
    let barrier = SpinBarrier(words, parties: 2)
    let done = DispatchGroup()
    for body in [first, second] {
      done.enter()
      Thread.detachNewThread {
        barrier.wait()
        body()
        done.leave()
      }
    }
    done.wait()
  }

  /// freePage puts an order-0 page on the CPU's cache under that cache's lock;
  /// freeContiguous gives a run to the buddy lists under the global lock. A one-page
  /// run is both: freed both ways at once, exactly one call may succeed, or the page
  /// ends up in a cache and on a free list (and is handed out twice).
  @Test("a one-page run freed by freePage and freeContiguous at once: one wins, the other gets notAllocated")
  func freePageAgainstFreeContiguous() throws {
    let ram = SimulatedRAM(bytes: 64 << 20)
    let memory = try machine(ram)
    let part = memory.frames
    let frames = try #require(part)
    frames.drainHotPages()
    let free = frames.freePageCount
    let rounds = 2_000
    let wins = UnsafeMutablePointer<Int>.allocate(capacity: 2)
    wins.initialize(repeating: 0, count: 2)
    defer { wins.deallocate() }
    for round in 0..<rounds {
      let page = try #require(frames.allocContiguous(pages: 1))
      let address = Int(bitPattern: page)
      // Alternate which path starts first.
      let viaCache: @Sendable () -> Void = {
        if (try? frames.freePage(UnsafeMutableRawPointer(bitPattern: address)!)) != nil { wins[0] += 1 }
      }
      let viaBuddy: @Sendable () -> Void = {
        if (try? frames.freeContiguous(UnsafeMutableRawPointer(bitPattern: address)!, pages: 1)) != nil { wins[1] += 1 }
      }
      if round % 2 == 0 { race(viaCache, viaBuddy) } else { race(viaBuddy, viaCache) }
      #expect(wins[0] + wins[1] == round + 1, "round \(round): \(wins[0] + wins[1] - round) calls freed the page")
    }
    #expect(frames.checkInvariants() == nil)
    frames.drainHotPages()
    #expect(frames.freePageCount == free)
    // Every page is free exactly once: the whole RAM minus what was never free comes back.
    #expect(frames.checkInvariants() == nil)
  }

  /// A CPU still allocating from and freeing to an object cache while another destroys
  /// it, and then makes a new cache that may take its place: every call is served or
  /// refused, and the heap stays whole.
  @Test("ObjectCache.destroy racing allocations on another thread: refused or safe, never a use after free")
  func destroyAgainstAllocations() throws {
    let ram = SimulatedRAM(bytes: 64 << 20)
    let memory = try machine(ram)
    let part = memory.heap
    let heap = try #require(part)
    for round in 0..<200 {
      let cache = try #require(ObjectCache(heap: heap, objectSize: 64 + round % 5 * 16))
      let user: @Sendable () -> Void = {
        for _ in 0..<200 {
          guard let object = cache.allocate() else { continue }
          UnsafeMutableRawPointer(object).storeBytes(of: UInt(round), as: UInt.self)
          // Frees may be refused once the cache is gone: never, while the object is live.
          try? cache.free(object)
        }
      }
      let destroyer: @Sendable () -> Void = {
        for _ in 0..<50 {
          if (try? cache.destroy()) != nil { break }
        }
        // A new cache in the old one's slot, used at once.
        if let next = ObjectCache(heap: heap, objectSize: 48), let object = next.allocate() {
          try? next.free(object)
          _ = try? next.destroy()
        }
      }
      race(user, destroyer)
      _ = try? cache.destroy()
      #expect(cache.allocate() == nil, "round \(round): a destroyed cache still serves")
      #expect(heap.check() == nil, "round \(round)")
    }
  }

  /// What makes destroy safe against a CPU still inside the cache: the cache's lock and
  /// state (in a block of the heap) are never handed out as anything else, so a stale
  /// handle's lock is still a lock. Deterministic: after destroy, blocks of every size
  /// around the state's are allocated until the heap's initial arena is full, and none
  /// may cover the destroyed cache's lock word.
  @Test("a destroyed cache's lock and state are never reused as a heap block")
  func destroyedStateStaysACache() throws {
    let ram = SimulatedRAM(bytes: 64 << 20)
    let memory = try machine(ram)
    let part = memory.heap
    let heap = try #require(part)
    let cache = try #require(ObjectCache(heap: heap, objectSize: 96))
    let object = try #require(cache.allocate())
    try cache.free(object)
    try cache.destroy()
    let lockWord = UInt(bitPattern: cache.cache.address)
    var blocks: [UnsafeMutableRawPointer] = []
    defer { for block in blocks { try? heap.deallocate(block) } }
    // TLSF blocks (alignment above 16 skips the slab classes) of 16 to 1024 bytes.
    for size in stride(from: 16, through: 1024, by: 16) {
      for _ in 0..<8 {
        guard let block = heap.allocate(size, alignment: 32) else { break }
        blocks.append(block)
        let start = UInt(bitPattern: block)
        #expect(!(start <= lockWord && lockWord < start + UInt(size)), "a block of \(size) bytes covers the destroyed cache's lock")
      }
    }
    #expect(cache.allocate() == nil)
    #expect(heap.check() == nil)
  }
}
