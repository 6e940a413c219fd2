import KernelMemory
import KernelHeap
import PageFrames

/// One live allocation in the shadow model.
struct ShadowBlock {
  let pointer: UnsafeMutableRawPointer
  let size: Int
  let tag: UInt8
}

/// Operations per seed in the shared model scenario.
public let modelOperationsPerSeed = 10_000

/// Seeded random heap and page operations mirrored into a shadow model. Heap: 512 KiB
/// growing in steps of up to 64 KiB from a page allocator over 2 MiB of simulated RAM,
/// giving emptied arenas back; sizes from 0 to 1 MiB (those above 128 KiB are page runs),
/// alignments up to 4096, reallocs, frees in random order, page runs of order 0-3 taken
/// and patterned by the model. After every operation: no overlap, alignment, contents,
/// heapCheck, the page invariants, every arena and large allocation page owned by the
/// heap in the page array (so none is on the free lists), and the accounting identity.
/// Small sizes are slab objects of the size classes; an `ObjectCache` of a random size
/// and alignment runs beside them, with frees through the wrong door (kfree of a cache
/// object, the cache's free of a kmalloc pointer) expected to be refused. At the end
/// everything is freed and the cache destroyed (refused first while objects are live):
/// one arena, one free block, every page back.
/// Failures carry the seed as their value, so a run can be replayed.
public func runModel(_ memory: ScenarioMemory, seed: UInt64, operations: Int, _ e: inout Expectations) {
  var rng = SplitMix(seed: seed)
  runModel(memory, source: &rng, operations: operations, failureValue: UInt(truncatingIfNeeded: seed), &e)
}

/// The model run with its choices drawn from `source` (a generator or a fuzzer's bytes),
/// for at most `operations` operations or until the source runs dry. Besides valid
/// operations it tries bad ones and expects each to be refused with the structures intact:
/// freeing a recently freed pointer that is not live again, an interior or misaligned
/// pointer, a pointer outside the heap, and freeing a page run twice.
public func runModel<Source: OperationSource>(
  _ memory: ScenarioMemory, source rng: inout Source, operations: Int, failureValue seedValue: UInt,
  _ e: inout Expectations
) {
  let ramPages = 512
  let frames = PageFrameAllocator(
    base: simulatedBase, pageCount: ramPages, metadata: memory.base + (3 << 20),
    directMapOffset: Int(bitPattern: memory.base + (1 << 20)) - Int(bitPattern: simulatedBase),
    zeroFill: memory.zeroFill, slots: scenarioSlots)
  frames.release(start: simulatedBase, end: simulatedBase + UInt(ramPages * Page.size))
  let arena = 512 << 10
  let heap = Heap(start: memory.base, size: arena, zeroFill: memory.zeroFill, frames: frames, growthStepPages: 16, slots: scenarioSlots)!
  // An object cache of a random size and alignment beside kmalloc's size classes.
  let objectSize = 1 + rng.below(600)
  let objectAlignment = 16 << rng.below(3)
  guard let objects = ObjectCache(heap: heap, objectSize: objectSize, alignment: objectAlignment) else {
    e.expect(false, "model: object cache refused (seed)", seedValue)
    return
  }
  var liveObjects: [ShadowBlock] = []
  var live: [ShadowBlock] = []
  var pages: [(UnsafeMutableRawPointer, Int)] = []
  /// The byte a model page run is filled with, from its address.
  func pattern(_ run: UnsafeMutableRawPointer) -> UInt8 { UInt8(truncatingIfNeeded: UInt(bitPattern: run) >> 12) ^ 0x3C }
  func runIntact(_ run: UnsafeMutableRawPointer, _ order: Int) -> Bool {
    let bytes = Page.size << order
    let expected = pattern(run)
    var offset = 0
    while offset < bytes {
      if run.load(fromByteOffset: offset, as: UInt8.self) != expected { return false }
      offset += 61
    }
    return run.load(fromByteOffset: bytes - 1, as: UInt8.self) == expected
  }
  /// Every page of every growth arena and live large allocation is the heap's in the
  /// page array; with the page invariants (free lists hold free pages only) no page is
  /// both the heap's and free.
  func heapPagesOwned() -> Bool {
    for (index, range) in heap.arenaRanges.enumerated() where index > 0 {
      let run = UnsafeMutableRawPointer(bitPattern: Page.roundDown(range.start))!
      if !pagesOwned(frames, run, bytes: Int(range.end - UInt(bitPattern: run)), by: .heap) { return false }
    }
    for block in live where block.size > Heap.largeRequestThreshold {
      if !pagesOwned(frames, block.pointer, bytes: block.size, by: .heapLarge) { return false }
    }
    for object in liveObjects where frames.owner(ofPhysical: frames.physical(of: object.pointer)) != .slab { return false }
    return true
  }
  /// Recently freed payloads and page runs, for the double-free attempts.
  var freed: [UnsafeMutableRawPointer] = []
  var freedPages: [(UnsafeMutableRawPointer, Int)] = []
  var tag: UInt8 = 0

  func overlaps(_ p: UnsafeMutableRawPointer, _ size: Int) -> Bool {
    let start = UInt(bitPattern: p), end = start + UInt(max(size, 1))
    for block in live + liveObjects {
      let s = UInt(bitPattern: block.pointer), t = s + UInt(max(block.size, 1))
      if start < t && s < end { return true }
    }
    return false
  }

  func intact(_ block: ShadowBlock) -> Bool {
    if block.size == 0 { return true }
    let bytes = block.pointer.assumingMemoryBound(to: UInt8.self)
    let step = max(1, block.size / 16)
    var i = 0
    while i < block.size {
      if bytes[i] != block.tag { return false }
      i += step
    }
    return bytes[block.size - 1] == block.tag
  }

  func remember<T>(_ list: inout [T], _ item: T) {
    if list.count == 8 { list.remove(at: 0) }
    list.append(item)
  }

  func expectRefused(_ pointer: UnsafeMutableRawPointer, _ e: inout Expectations) {
    do throws(HeapError) {
      try heap.deallocate(pointer)
      e.expect(false, "model: bad free accepted (seed)", seedValue)
    } catch {}
  }

  var step = 0
  while step < operations && !rng.exhausted {
    step += 1
    let action = rng.below(100)
    if action < 42 || live.isEmpty {
      // Sizes: mostly small, some large, a few beyond 2x the arena.
      let kind = rng.below(100)
      let size = kind < 70 ? rng.below(256) : kind < 95 ? rng.below(8192) : rng.below(2 * arena)  // up to 1 MiB
      let alignment = rng.below(8) == 0 ? 1 << rng.inRange(5..<13) : 16
      if let p = alignment == 16 ? heap.allocate(size) : heap.allocate(size, alignment: alignment) {
        e.expect(UInt(bitPattern: p) & UInt(alignment - 1) == 0, "model: misaligned allocation (seed)", seedValue)
        e.expect(!overlaps(p, size), "model: allocation overlaps a live one (seed)", seedValue)
        tag &+= 1
        p.initializeMemory(as: UInt8.self, repeating: tag, count: size)
        live.append(ShadowBlock(pointer: p, size: size, tag: tag))
      }
    } else if action < 74 {
      let block = live.remove(at: rng.below(live.count))
      e.expect(intact(block), "model: contents changed under an allocation (seed)", seedValue)
      do throws(HeapError) { try heap.deallocate(block.pointer) } catch { e.expect(false, "model: valid free refused (seed)", seedValue) }
      remember(&freed, block.pointer)
    } else if action < 84 {
      let index = rng.below(live.count)
      let block = live[index]
      let size = rng.below(4096)
      do throws(HeapError) {
        if let p = try heap.reallocate(block.pointer, to: size) {
          let kept = min(size, block.size)
          let moved = ShadowBlock(pointer: p, size: kept, tag: block.tag)
          e.expect(intact(moved), "model: realloc lost contents (seed)", seedValue)
          live.remove(at: index)
          e.expect(!overlaps(p, size), "model: realloc overlaps a live block (seed)", seedValue)
          p.initializeMemory(as: UInt8.self, repeating: block.tag, count: size)
          live.append(ShadowBlock(pointer: p, size: size, tag: block.tag))
        } else if size == 0 {
          live.remove(at: index)
        }
      } catch {
        e.expect(false, "model: realloc refused a live block (seed)", seedValue)
      }
    } else if action < 87 {
      // The object cache: allocate (two in three) or free, and now and then a free of
      // an object through the wrong door.
      if rng.below(3) < 2 || liveObjects.isEmpty {
        if let p = objects.allocate() {
          e.expect(UInt(bitPattern: p) & UInt(objectAlignment - 1) == 0, "model: misaligned cache object (seed)", seedValue)
          e.expect(!overlaps(p, objectSize), "model: cache object overlaps a live one (seed)", seedValue)
          tag &+= 1
          p.initializeMemory(as: UInt8.self, repeating: tag, count: objectSize)
          liveObjects.append(ShadowBlock(pointer: p, size: objectSize, tag: tag))
        }
      } else {
        let object = liveObjects.remove(at: rng.below(liveObjects.count))
        e.expect(intact(object), "model: cache object contents changed (seed)", seedValue)
        if rng.below(8) == 0 { expectRefused(object.pointer, &e) }
        if let block = live.first, rng.below(8) == 0 {
          do throws(HeapError) {
            try objects.free(block.pointer)
            e.expect(false, "model: object cache freed a kmalloc pointer (seed)", seedValue)
          } catch {}
        }
        do throws(HeapError) { try objects.free(object.pointer) } catch { e.expect(false, "model: valid cache free refused (seed)", seedValue) }
        remember(&freed, object.pointer)
      }
    } else if action < 90 || pages.isEmpty && action < 95 {
      let order = rng.below(4)
      if let run = frames.allocPages(order: order, zeroed: false) {
        run.initializeMemory(as: UInt8.self, repeating: pattern(run), count: Page.size << order)
        pages.append((run, order))
      }
    } else if action < 95 {
      let (run, order) = pages.remove(at: rng.below(pages.count))
      e.expect(runIntact(run, order), "model: a page run's pattern changed: handed out twice (seed)", seedValue)
      do throws(PageFrameError) { try frames.freePages(run, order: order) } catch { e.expect(false, "model: page free refused (seed)", seedValue) }
      remember(&freedPages, (run, order))
    } else {
      switch rng.below(4) {
      case 0:
        // A stale pointer, unless the heap has handed that address out again.
        if !freed.isEmpty {
          let stale = freed[rng.below(freed.count)]
          if !live.contains(where: { $0.pointer == stale }) { expectRefused(stale, &e) }
        }
      case 1:
        // Inside a live block: a 16-byte step into its tagged bytes (strictly inside: the
        // byte after a slab object starts the next one), or 8 bytes off.
        let block = live[rng.below(live.count)]
        if block.size > 16 {
          expectRefused(block.pointer + 16 * rng.inRange(1..<((block.size + 15) / 16)), &e)
        }
        expectRefused(block.pointer + 8, &e)
      case 2:
        // Memory the heap never owned: the end of the scenario memory.
        expectRefused(memory.base + (memory.bytes - Page.size + 16 * rng.below(200)), &e)
      default:
        if !freedPages.isEmpty {
          let (run, order) = freedPages[rng.below(freedPages.count)]
          if !pages.contains(where: { $0.0 == run }) {
            do throws(PageFrameError) {
              try frames.freePages(run, order: order)
              e.expect(false, "model: page double free accepted (seed)", seedValue)
            } catch {}
          }
        }
      }
    }
    if let failure = heap.check() { e.expect(false, failure.reason, seedValue) }
    var held = 0
    for (_, order) in pages { held += 1 << order }
    e.expect(frames.freePageCount + frames.count(.allocated) + frames.count(.heap) + frames.count(.heapLarge)
      + frames.count(.slab) == ramPages
      && frames.count(.allocated) == held, "model: page accounting identity (seed)", seedValue)
    if let failure = frames.checkInvariants() { e.expect(false, failure.reason, seedValue) }
    e.expect(heapPagesOwned(), "model: a heap page is not the heap's in the page array (seed)", seedValue)
    if !e.passed { return }
  }
  for block in live {
    e.expect(intact(block), "model: contents changed (seed)", seedValue)
    try? heap.deallocate(block.pointer)
  }
  for (run, order) in pages {
    e.expect(runIntact(run, order), "model: a page run's pattern changed (seed)", seedValue)
    try? frames.freePages(run, order: order)
  }
  do throws(HeapError) {
    if !liveObjects.isEmpty {
      try objects.destroy()
      e.expect(false, "model: destroy of a cache with live objects accepted (seed)", seedValue)
    }
  } catch {
    e.expect(error.reason == .cacheInUse, "model: destroy refused for the wrong reason (seed)", seedValue)
  }
  e.expect(objects.statistics?.liveObjects == liveObjects.count, "model: cache live count differs from the model (seed)", seedValue)
  for object in liveObjects {
    e.expect(intact(object), "model: cache object contents changed (seed)", seedValue)
    try? objects.free(object.pointer)
  }
  do throws(HeapError) { try objects.destroy() } catch { e.expect(false, "model: destroy of an empty cache refused (seed)", seedValue) }
  e.expect(objects.allocate() == nil && objects.statistics == nil, "model: a destroyed cache still serves (seed)", seedValue)
  heap.releaseEmptySlabs()
  let stats = heap.statistics
  e.expect(stats.slabObjects == 0 && stats.slabBytes == 0, "model: slab objects or pages left after freeing everything (seed)", seedValue)
  // One block stays: the destroyed cache's slot, which the heap keeps for the next
  // cache (a handle another CPU still holds must find a lock there, never freed memory).
  e.expect(stats.allocatedBlocks == 1 && stats.largeAllocations == 0 && stats.freeBlocks <= 2 && stats.arenas == 1,
    "model: heap not one arena of free space and the retired cache slot after freeing everything (seed)", seedValue)
  e.expect(heap.check() == nil, "model: heapCheck at the end (seed)", seedValue)
  e.expect(frames.freePageCount == ramPages, "model: pages lost: not all given back (seed)", seedValue)
  e.expect(frames.checkInvariants() == nil, "model: page invariants at the end (seed)", seedValue)
}

func modelScenarios() -> [Scenario] {
  [
    Scenario("model.heap_and_pages") { memory, e in
      runModel(memory, seed: memory.seed, operations: modelOperationsPerSeed, &e)
    }
  ]
}
