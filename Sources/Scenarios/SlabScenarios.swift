import KernelMemory
import KernelHeap
import PageFrames

// Slab caches: every size class, slabs made and given back, full slabs, frees across
// classes, the object-cache API, and each bad input on slab objects. Expected figures
// come from the requests and the page array, never from the slab code's own tables.

/// The page run (first page, pages) holding `pointer`, from the page array.
func slabRun(_ frames: PageFrameAllocator, _ pointer: UnsafeMutableRawPointer) -> PageRun? {
  frames.run(containing: frames.physical(of: pointer))
}

/// Runs `body` with bad-input reports collected, then restores the handler.
func collectingReports(_ body: () -> Void) -> [BadInputReport] {
  var reports: [BadInputReport] = []
  let saved = badInputHandler
  badInputHandler = { reports.append($0) }
  body()
  badInputHandler = saved
  return reports
}

func slabScenarios() -> [Scenario] {
  [
    Scenario("slab.every_class") { memory, e in
      guard let (frames, heap) = makeMachine(memory, &e) else { return }
      // Each request from 0 to 1024 bytes: a slab object at least that big, 16-byte
      // aligned, wasting at most a fifth of it, filled without touching its neighbours.
      var previous: UnsafeMutableRawPointer? = nil
      var previousSize = 0
      for size in 0...1024 {
        guard let p = heap.allocate(size) else { return e.expect(false, "kmalloc of a small size failed", UInt(size)) }
        let usable = (try? heap.usableSize(p)) ?? 0
        e.expect(usable >= max(size, 1) && (usable - max(size, 1) < 16 || usable * 8 <= size * 9), "object size within 15 bytes or an eighth of the request", UInt(size))
        e.expect(UInt(bitPattern: p) & 15 == 0, "slab object 16-byte aligned", UInt(size))
        e.expect(frames.owner(ofPhysical: frames.physical(of: p)) == .slab, "small request served by a slab page", UInt(size))
        p.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: size), count: usable)
        if let previous {
          e.expect(sampledBytesEqual(previous, bytes: previousSize, UInt8(truncatingIfNeeded: size - 1)), "a neighbour's fill reached this object", UInt(size))
          try? heap.deallocate(previous)
        }
        previous = p
        previousSize = usable
      }
      try? heap.deallocate(previous)
      e.expect(heap.statistics.slabObjects == 0, "no slab object left", 0)
      e.expect(heap.check() == nil, "heapCheck after every class", 0)
      heap.releaseEmptySlabs()
      e.expect(frames.count(.slab) == 0 && heap.statistics.slabBytes == 0, "every slab page back", UInt(frames.count(.slab)))
      e.expect(frames.checkInvariants() == nil, "page invariants", 0)
    },
    Scenario("slab.create_full_and_return") { memory, e in
      guard let (frames, heap) = makeMachine(memory, &e) else { return }
      let startFree = frames.freePageCount
      // 64-byte objects until the fourth slab begins; count each slab's objects by its run.
      var objects: [UnsafeMutableRawPointer] = []
      var runs: [PageRun] = []
      var perRun: [Int] = []
      while runs.count < 4 {
        guard let p = heap.allocate(64), let run = slabRun(frames, p) else { return e.expect(false, "slab allocation failed", UInt(objects.count)) }
        if runs.last != run {
          e.expect(!runs.contains(run), "a full slab handed out another object", UInt(objects.count))
          runs.append(run)
          perRun.append(0)
        }
        perRun[perRun.count - 1] += 1
        objects.append(p)
        let start = UInt(bitPattern: frames.pointer(toPhysical: run.start))
        e.expect(UInt(bitPattern: p) >= start && UInt(bitPattern: p) + 64 <= start + UInt(run.pages << Page.shift), "object inside its slab", UInt(bitPattern: p))
      }
      let slabBytes = runs[0].pages << Page.shift
      e.expect(perRun[0] == perRun[1] && perRun[1] == perRun[2], "every full slab holds as many objects", UInt(perRun[0]))
      e.expect(perRun[0] * 64 * 10 >= slabBytes * 9, "a slab of 64-byte objects wastes at most a tenth", UInt(perRun[0]))
      e.expect(frames.count(.slab) == 4 * runs[0].pages && frames.freePageCount == startFree - 4 * runs[0].pages, "four slab runs taken", UInt(frames.count(.slab)))
      // A free into the first (full) slab: the next allocation still comes from the
      // current (fourth) slab while it has room.
      try? heap.deallocate(objects[3])
      let next = heap.allocate(64)
      e.expect(next != nil && slabRun(frames, next!) == runs[3], "allocation stays on the current slab", 0)
      objects[3] = next!
      // Free every object: the slabs empty; one empty slab is kept besides the current one.
      for p in objects { try? heap.deallocate(p) }
      e.expect(heap.check() == nil, "heapCheck after the slabs emptied", 0)
      e.expect(frames.count(.slab) == 2 * runs[0].pages, "empty slabs go back but for the current and one kept", UInt(frames.count(.slab)))
      heap.releaseEmptySlabs()
      e.expect(frames.freePageCount == startFree && frames.count(.slab) == 0, "every slab page back after releaseEmptySlabs", UInt(frames.freePageCount))
      // Hysteresis: one object allocated and freed 1000 times at a slab boundary costs
      // one page run, not one per cycle.
      for _ in 0..<1000 {
        let p = heap.allocate(64)
        try? heap.deallocate(p)
      }
      e.expect(frames.freePageCount == startFree - runs[0].pages, "alloc/free at a boundary keeps its slab", UInt(frames.freePageCount))
      heap.releaseEmptySlabs()
      e.expect(frames.checkInvariants() == nil && heap.check() == nil, "invariants at the end", 0)
    },
    Scenario("slab.cross_class_frees") { memory, e in
      guard let (frames, heap) = makeMachine(memory, &e) else { return }
      var rng = SplitMix(seed: memory.seed)
      var live: [(UnsafeMutableRawPointer, Int, UInt8)] = []
      for step in 0..<20_000 {
        if live.isEmpty || rng.below(100) < 55 {
          let size = rng.below(1025)
          guard let p = heap.allocate(size) else { return e.expect(false, "allocation failed", UInt(step)) }
          let mark = UInt8(truncatingIfNeeded: step)
          p.initializeMemory(as: UInt8.self, repeating: mark, count: size)
          live.append((p, size, mark))
        } else if rng.below(4) == 0 {
          // Realloc across classes keeps the contents.
          let index = rng.below(live.count)
          let (p, size, mark) = live[index]
          let newSize = rng.below(1025)
          guard let q = try? heap.reallocate(p, to: newSize) else {
            if newSize != 0 { e.expect(false, "realloc failed", UInt(step)) } else { live.remove(at: index) }
            continue
          }
          e.expect(sampledBytesEqual(q, bytes: min(size, newSize), mark), "realloc kept the contents", UInt(step))
          q.initializeMemory(as: UInt8.self, repeating: mark, count: newSize)
          live[index] = (q, newSize, mark)
        } else {
          let (p, size, mark) = live.remove(at: rng.below(live.count))
          e.expect(sampledBytesEqual(p, bytes: size, mark), "object contents intact at free", UInt(step))
          do throws(HeapError) { try heap.deallocate(p) } catch { e.expect(false, "valid free refused", UInt(step)) }
        }
        if step % 1000 == 0 { e.expect(heap.check() == nil, "heapCheck during cross-class frees", UInt(step)) }
        if !e.passed { return }
      }
      for (p, _, _) in live { try? heap.deallocate(p) }
      heap.releaseEmptySlabs()
      e.expect(heap.check() == nil && heap.statistics.slabObjects == 0 && frames.count(.slab) == 0, "all back after cross-class frees", 0)
    },
    Scenario("slab.bad_input") { memory, e in
      guard let (frames, heap) = makeMachine(memory, &e) else { return }
      guard let a = heap.allocate(256), let b = heap.allocate(256), let small = heap.allocate(16) else {
        return e.expect(false, "allocation failed", 0)
      }
      // Interior pointers: every 16-byte step inside the object, and the slab's header.
      for offset in stride(from: 16, to: 256, by: 16) {
        expectRefused(heap, a + offset, .interiorPointer, &e, "a pointer inside a slab object")
      }
      expectRefused(heap, a + 8, .misaligned, &e, "a misaligned pointer into a slab object")
      if let run = slabRun(frames, a) {
        expectRefused(heap, frames.pointer(toPhysical: run.start), .interiorPointer, &e, "a slab's header")
        expectRefused(heap, frames.pointer(toPhysical: run.start) + (run.pages << Page.shift) - 16, .interiorPointer, &e, "a slab's tail past the last object")
      }
      // Foreign pointers: a page of the page allocator, the kernel image, past RAM.
      if let page = frames.allocPages(order: 0, zeroed: false) {
        expectRefused(heap, page, .outsideHeap, &e, "a page of the page allocator")
        try? frames.freePages(page, order: 0)
      }
      expectRefused(heap, frames.pointer(toPhysical: simulatedBase + 0x10_0000), .outsideHeap, &e, "a kernel page")
      expectRefused(heap, frames.pointer(toPhysical: simulatedBase + UInt(memory.bytes)), .outsideHeap, &e, "past RAM")
      // Double free, every time: 1000 objects freed twice in a scrambled order.
      var objects: [UnsafeMutableRawPointer] = []
      for index in 0..<1000 { if let p = heap.allocate(16 + index % 200) { objects.append(p) } }
      var rng = SplitMix(seed: memory.seed)
      for index in stride(from: objects.count - 1, to: 0, by: -1) { objects.swapAt(index, rng.below(index + 1)) }
      for p in objects {
        try? heap.deallocate(p)
        expectFreeThrows(heap, p, .doubleFree, &e, "a slab object freed twice", detail: UInt(bitPattern: p))
      }
      e.expect(heap.check() == nil, "heapCheck after the double frees", 0)
      // Through the wrong door: an object cache's object to kfree, a kmalloc object to
      // the cache.
      if let cache = ObjectCache(heap: heap, objectSize: 256), let object = cache.allocate() {
        expectRefused(heap, object, .wrongCache, &e, "kfree of an object-cache object")
        do throws(HeapError) {
          try cache.free(b)
          e.expect(false, "the cache freed a kmalloc object", 0)
        } catch { e.expect(error.reason == .wrongCache, "the cache refuses a kmalloc object", UInt(bitPattern: b)) }
        try? cache.free(object)
        do throws(HeapError) {
          try cache.free(object)
          e.expect(false, "the cache freed an object twice", 0)
        } catch { e.expect(error.reason == .doubleFree, "cache double free", UInt(bitPattern: object)) }
        try? cache.destroy()
      } else {
        e.expect(false, "object cache refused", 0)
      }
      try? heap.deallocate(a)
      try? heap.deallocate(b)
      try? heap.deallocate(small)
      // A slab given back: its objects are free pages now.
      heap.releaseEmptySlabs()
      expectFreeThrows(heap, a, .doubleFree, &e, "an object of a slab given back", detail: 1)
      e.expect(heap.check() == nil && frames.checkInvariants() == nil, "structures intact after every bad input", 0)
    },
    Scenario("slab.magazine") { memory, e in
      guard let (frames, heap) = makeMachine(memory, &e) else { return }
      // Frees into the current slab: the first ones go to the cache's magazine, the rest
      // onto the slab's free list. Either way the object is free to every caller at
      // once; the model is the set of pointers handed out and not freed.
      var live: [UnsafeMutableRawPointer] = []
      for _ in 0..<12 {
        guard let p = heap.allocate(64) else { return e.expect(false, "allocation failed", 64) }
        live.append(p)
      }
      let first = live[0]
      e.expect(live.allSatisfy { slabRun(frames, $0)?.start == slabRun(frames, first)?.start }, "twelve objects of one slab", 0)
      var freed: [UnsafeMutableRawPointer] = []
      for step in 0..<8 {
        let p = live.remove(at: (step * 5) % live.count)
        try? heap.deallocate(p)
        freed.append(p)
        e.expect(heap.statistics.slabObjects == live.count, "live objects as the model has them", UInt(step))
        e.expect(heap.sizeClass(ofObject: p) == -1, "a freed object is no live object", UInt(step))
        // Every freed object, in the magazine or on the list: a second free is refused.
        for q in freed { expectFreeThrows(heap, q, .doubleFree, &e, "a second free of a freed object", detail: UInt(step)) }
        e.expect(heap.check() == nil, "heapCheck after each free", UInt(step))
      }
      // The freed objects come back before any other (the magazine's, then the list's).
      var again: [UnsafeMutableRawPointer] = []
      for _ in 0..<freed.count {
        guard let p = heap.allocate(64) else { return e.expect(false, "allocation failed", 64) }
        again.append(p)
      }
      e.expect(again.count == freed.count && again.allSatisfy { freed.contains($0) }, "the freed objects are handed out again", 0)
      e.expect(heap.check() == nil && heap.statistics.slabObjects == live.count + again.count, "counts after taking them back", 0)
      for p in live + again { try? heap.deallocate(p) }
      e.expect(heap.statistics.slabObjects == 0 && heap.check() == nil, "every object free", 0)
      // The magazine's objects go back to their slab before it is given back.
      heap.releaseEmptySlabs()
      e.expect(frames.count(.slab) == 0 && heap.statistics.slabBytes == 0, "every slab page back", UInt(frames.count(.slab)))
      e.expect(frames.checkInvariants() == nil, "page invariants", 0)
    },
    Scenario("slab.write_after_free") { memory, e in
      guard let (_, heap) = makeMachine(memory, &e) else { return }
      // Overwrite the link in a free object three ways; each is found when the object
      // is allocated again, and the list is cut rather than followed.
      var liveOthers: [UnsafeMutableRawPointer] = []
      for (trial, size) in [48, 96, 192].enumerated() {
        // The first frees into the current slab fill its cache's magazine, whose objects
        // hold no link: the objects freed before a and b take those places.
        let fill = (0..<Heap.magazineSize).compactMap { _ in heap.allocate(size) }
        guard fill.count == Heap.magazineSize, let a = heap.allocate(size), let b = heap.allocate(size),
          let c = heap.allocate(size)
        else {
          return e.expect(false, "allocation failed", UInt(size))
        }
        liveOthers.append(c)
        for p in fill { try? heap.deallocate(p) }
        try? heap.deallocate(a)
        try? heap.deallocate(b)  // the list: b -> a
        let forged: UInt = trial == 0 ? 0x4141_4141_4141_4141 : trial == 1 ? UInt(bitPattern: c) : UInt(bitPattern: a) + 16
        b.storeBytes(of: forged, as: UInt.self)  // the write after free
        // The magazine's objects come back first, without a report.
        let refill = (0..<Heap.magazineSize).compactMap { _ in heap.allocate(size) }
        e.expect(refill.count == fill.count && refill.allSatisfy { fill.contains($0) }, "the magazine hands its objects back first", UInt(size))
        liveOthers += refill
        var first: UnsafeMutableRawPointer? = nil
        let reports = collectingReports { first = heap.allocate(size) }
        e.expect(first == b, "the overwritten object is handed out first", UInt(size))
        e.expect(reports.count == 1 && sameText(reports.first!.reason, HeapError.Reason.freeListCorrupted.text)
          && reports.first?.address == UInt(bitPattern: b), "the overwritten link is reported with its object", UInt(size))
        // The forged pointer is never handed out: the next objects are fresh ones.
        var next: [UnsafeMutableRawPointer] = []
        for _ in 0..<4 { if let p = heap.allocate(size) { next.append(p) } }
        e.expect(next.count == 4 && !next.contains(c) && !next.contains(a + 16), "the forged link is not followed", UInt(size))
        e.expect(heap.check() == nil, "heapCheck after a cut free list", UInt(size))
        for p in next { try? heap.deallocate(p) }
        try? heap.deallocate(first)
      }
      for p in liveOthers { try? heap.deallocate(p) }
      heap.releaseEmptySlabs()
      e.expect(heap.check() == nil && heap.statistics.slabBytes == 0, "the damaged slabs go back once empty", UInt(heap.statistics.slabBytes))

    },
    Scenario("slab.header_overrun") { memory, e in
      guard let (frames, heap) = makeMachine(memory, &e) else { return }
      // An overflow out of the memory below a slab reaches its header: the next
      // allocation from it reports the slab, never uses its fields, and serves from
      // another slab.
      guard let first = heap.allocate(32), let run = slabRun(frames, first) else { return e.expect(false, "allocation failed", 0) }
      let header = frames.pointer(toPhysical: run.start)
      let saved = header.load(as: UInt.self)
      header.storeBytes(of: saved ^ 0x4141, as: UInt.self)
      var next: UnsafeMutableRawPointer? = nil
      let reports = collectingReports { next = heap.allocate(32) }
      e.expect(reports.count == 1 && sameText(reports.first!.reason, HeapError.Reason.corruptSlab.text)
        && reports.first?.address == UInt(bitPattern: header), "the overrun slab is reported with its address", UInt(reports.count))
      e.expect(next != nil && slabRun(frames, next!) != run, "the allocation comes from another slab", 0)
      expectFreeThrows(heap, first, .corruptSlab, &e, "a free into the overrun slab", detail: UInt(bitPattern: first))
      e.expect(heap.check() != nil, "heapCheck reports the abandoned slab", 0)
      header.storeBytes(of: saved, as: UInt.self)
      try? heap.deallocate(next)
    },
    Scenario("slab.object_cache_api") { memory, e in
      guard let (frames, heap) = makeMachine(memory, &e) else { return }
      let startFree = frames.freePageCount
      for (size, alignment) in [(1, 16), (24, 8), (100, 64), (200, 512), (4096, 4096), (1000, 16)] {
        guard let cache = ObjectCache(heap: heap, objectSize: size, alignment: alignment) else {
          e.expect(false, "cache refused", UInt(size))
          continue
        }
        var objects: [UnsafeMutableRawPointer] = []
        let count = size <= 1000 ? 300 : 40
        for index in 0..<count {
          guard let p = cache.allocate() else { break }
          e.expect(UInt(bitPattern: p) & UInt(max(alignment, 16) - 1) == 0, "cache object aligned", UInt(alignment))
          p.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: index), count: size)
          objects.append(p)
        }
        e.expect(objects.count == count, "every object asked for from the cache", UInt(size))
        for (index, p) in objects.enumerated() {
          e.expect(sampledBytesEqual(p, bytes: size, UInt8(truncatingIfNeeded: index)), "cache objects do not overlap", UInt(size))
        }
        let stats = cache.statistics
        e.expect(stats?.liveObjects == count && stats?.objectSize == size && (stats?.slotSize ?? 0) >= size
          && (stats?.slabBytes ?? 0) >= count * size && (stats?.slabs ?? 0) * (stats?.objectsPerSlab ?? 0) >= count,
          "statistics count the objects and the slabs that hold them", UInt(size))
        // The slabs' pages hold the objects, each object inside a `.slab` run.
        e.expect(objects.allSatisfy { frames.owner(ofPhysical: frames.physical(of: $0)) == .slab }, "objects on slab pages", UInt(size))
        do throws(HeapError) {
          try cache.destroy()
          e.expect(false, "destroy accepted with live objects", UInt(size))
        } catch { e.expect(error.reason == .cacheInUse, "destroy refused while objects are live", UInt(size)) }
        for p in objects { try? cache.free(p) }
        e.expect(cache.statistics?.liveObjects == 0, "statistics after the frees", UInt(size))
        do throws(HeapError) { try cache.destroy() } catch { e.expect(false, "destroy of an empty cache refused", UInt(size)) }
        e.expect(cache.allocate() == nil && cache.statistics == nil, "a destroyed cache serves nothing", UInt(size))
        do throws(HeapError) {
          try cache.free(objects[0])
          e.expect(false, "a destroyed cache accepted a free", UInt(size))
        } catch { e.expect(error.reason == .cacheDestroyed, "free through a destroyed cache", UInt(size)) }
        do throws(HeapError) {
          try cache.destroy()
          e.expect(false, "a cache destroyed twice", UInt(size))
        } catch { e.expect(error.reason == .cacheDestroyed, "destroy twice", UInt(size)) }
      }
      e.expect(frames.freePageCount == startFree, "destroyed caches give every page back", UInt(frames.freePageCount))
      // A handle to a destroyed cache never reaches a new cache made in its place (the
      // heap hands the same block out again).
      if let old = ObjectCache(heap: heap, objectSize: 64) {
        try? old.destroy()
        if let new = ObjectCache(heap: heap, objectSize: 64), let object = new.allocate() {
          e.expect(old.allocate() == nil && old.statistics == nil, "a stale handle is refused after its address is reused", 0)
          do throws(HeapError) {
            try old.free(object)
            e.expect(false, "a stale handle freed a new cache's object", 0)
          } catch { e.expect(error.reason == .cacheDestroyed, "a stale handle's free is cacheDestroyed", 0) }
          e.expect(new.statistics?.liveObjects == 1, "the new cache kept its object", 0)
          try? new.free(object)
          try? new.destroy()
        } else {
          e.expect(false, "second cache refused", 0)
        }
      }
      e.expect(ObjectCache(heap: heap, objectSize: 0) == nil && ObjectCache(heap: heap, objectSize: 4097) == nil
        && ObjectCache(heap: heap, objectSize: 64, alignment: 24) == nil && ObjectCache(heap: heap, objectSize: 64, alignment: 8192) == nil,
        "bad sizes and alignments refused", 0)
      let fixed = makeHeap(ScenarioMemory(base: memory.base + (memory.bytes - (1 << 20)), bytes: 1 << 20, zeroFill: memory.zeroFill))
      e.expect(ObjectCache(heap: fixed, objectSize: 64) == nil && fixed.allocate(64) != nil, "a heap without page frames has no slabs", 0)
      e.expect(heap.check() == nil && frames.checkInvariants() == nil, "invariants after the cache API", 0)
    },
  ]
}
