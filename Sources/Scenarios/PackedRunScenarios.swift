import KernelHeap
import PageFrames

/// The lengths of the stretches of free pages among the first `pages` pages, read page
/// by page from the owners (not from the free lists the allocator keeps).
func freeStretches(_ frames: PageFrameAllocator, pages: Int) -> [Int] {
  frames.drainHotPages()
  var stretches: [Int] = []
  var length = 0
  for index in 0...pages {
    if index < pages, frames.owner(ofPhysical: simulatedBase + UInt(index * Page.size)) == .free {
      length += 1
    } else if length > 0 {
      stretches.append(length)
      length = 0
    }
  }
  return stretches
}

func packedRunScenarios() -> [Scenario] {
  [
    // Runs whose length is not a power of two, taken until none fits: the failure is
    // real (no free stretch is that long) and every stretch keeps less than one run.
    Scenario("pages.packed_runs_fill_stretches") { memory, e in
      let pages = 1000
      // Three held holes: four free stretches of 101, 247, 349 and 291 pages.
      let frames = makeFrames(memory, pages: pages)
      var all: [UnsafeMutableRawPointer] = []
      while let page = frames.allocPages(order: 0, zeroed: false) { all.append(page) }
      for page in all {
        let index = Int((frames.physical(of: page) - simulatedBase) >> UInt(Page.shift))
        if !(101..<103).contains(index) && !(350..<351).contains(index) && !(700..<709).contains(index) { try? frames.freePage(page) }
      }
      let before = frames.freePageCount
      let stretches = freeStretches(frames, pages: pages)
      e.expect(stretches == [101, 247, 349, 291], "the held holes split the free pages into four stretches", UInt(stretches.count))
      for run in [24, 3, 100, 7, 300] {
        var taken: [UnsafeMutableRawPointer] = []
        while let area = frames.allocContiguous(pages: run, zeroed: false) { taken.append(area) }
        let left = freeStretches(frames, pages: pages)
        e.expect((left.max() ?? 0) < run, "allocContiguous failed while a stretch of free pages was long enough", UInt(run))
        e.expect(left.reduce(0, +) < stretches.count * run, "a stretch kept a run's worth of free pages", UInt(run))
        e.expect(frames.count(.allocated) == taken.count * run + 12, "allocated pages differ from the runs handed out", UInt(run))
        e.expect(frames.checkInvariants() == nil, "page invariants with packed runs out", UInt(run))
        for area in taken {
          do throws(PageFrameError) { try frames.freeContiguous(area, pages: run) } catch { e.expect(false, "freeContiguous of a packed run refused", UInt(run)) }
        }
        e.expect(frames.freePageCount == before && frames.checkInvariants() == nil, "packed runs back on the lists", UInt(run))
      }
    },
    // Random runs, shrinks and frees against a page model: no page is handed out twice,
    // every page the model holds is allocated in the page entries and every other one
    // free, and a shrunk run frees with its new length only.
    Scenario("pages.packed_runs_model") { memory, e in
      let pages = 1000
      let frames = makeFrames(memory, pages: pages)
      var rng = SplitMix(seed: memory.seed)
      var held = [Bool](repeating: false, count: pages)
      var live: [(index: Int, pages: Int)] = []
      let base = frames.physical(of: frames.pointer(toPhysical: simulatedBase))
      for step in 0..<3000 {
        let action = rng.below(10)
        if live.isEmpty || action < 5 {
          let count = 1 + rng.below(rng.below(4) == 0 ? 200 : 40)
          guard let area = frames.allocContiguous(pages: count, zeroed: false) else { continue }
          let index = Int((frames.physical(of: area) - base) >> UInt(Page.shift))
          for page in index..<(index + count) {
            e.expect(!held[page], "a page handed out twice", UInt(page))
            held[page] = true
          }
          live.append((index, count))
        } else if action < 7 {
          let which = rng.below(live.count)
          let run = live[which]
          let keep = 1 + rng.below(run.pages)
          let area = frames.pointer(toPhysical: base + UInt(run.index * Page.size))
          do throws(PageFrameError) {
            try frames.shrinkContiguous(area, pages: run.pages, keep: keep)
          } catch {
            e.expect(false, "shrinkContiguous refused", UInt(error.reason.rawValue))
            continue
          }
          for page in (run.index + keep)..<(run.index + run.pages) { held[page] = false }
          live[which].pages = keep
          if keep < run.pages {
            do throws(PageFrameError) {
              try frames.freeContiguous(area, pages: run.pages)
              e.expect(false, "a shrunk run freed with its old length", UInt(step))
            } catch {
              e.expect(error.reason == .notRunStart, "old length of a shrunk run is notRunStart", UInt(error.reason.rawValue))
            }
          }
        } else {
          let run = live.remove(at: rng.below(live.count))
          let area = frames.pointer(toPhysical: base + UInt(run.index * Page.size))
          do throws(PageFrameError) { try frames.freeContiguous(area, pages: run.pages) } catch {
            e.expect(false, "freeContiguous of a live run refused", UInt(error.reason.rawValue))
          }
          for page in run.index..<(run.index + run.pages) { held[page] = false }
        }
        if step % 100 == 0 {
          frames.drainHotPages()
          var agree = true
          for page in 0..<pages where (frames.owner(ofPhysical: base + UInt(page * Page.size)) == .allocated) != held[page] { agree = false }
          e.expect(agree, "page owners differ from the model", UInt(step))
          e.expect(frames.checkInvariants() == nil, "page invariants in the packed-run model", UInt(step))
        }
      }
      for run in live {
        try? frames.freeContiguous(frames.pointer(toPhysical: base + UInt(run.index * Page.size)), pages: run.pages)
      }
      frames.drainHotPages()
      e.expect(frames.freePageCount == pages && frames.largestFreeRun >= 512 && frames.checkInvariants() == nil, "every page back", UInt(frames.freePageCount))
    },
    // shrinkContiguous's bad input: each refused with its reason, nothing changed.
    Scenario("pages.shrink_bad_input") { memory, e in
      let frames = makeFrames(memory)
      guard let area = frames.allocContiguous(pages: 10, zeroed: false) else {
        e.expect(false, "10 pages from a free machine", 0)
        return
      }
      let before = frames.freePageCount
      let cases: [(UnsafeMutableRawPointer, Int, Int, PageOwner, PageFrameError.Reason)] = [
        (area, 10, 0, .allocated, .badOrder), (area, 10, 11, .allocated, .badOrder), (area, 9, 4, .allocated, .notRunStart),
        (area + Page.size, 9, 4, .allocated, .notRunStart), (area, 10, 4, .heap, .wrongOwner), (area + 16, 10, 4, .allocated, .misaligned),
      ]
      for (pointer, pages, keep, owner, reason) in cases {
        do throws(PageFrameError) {
          try frames.shrinkContiguous(pointer, pages: pages, keep: keep, owner: owner)
          e.expect(false, "bad shrinkContiguous accepted", UInt(keep))
        } catch {
          e.expect(error.reason == reason, "shrinkContiguous refused with another reason", UInt(error.reason.rawValue))
        }
      }
      e.expect(frames.freePageCount == before && frames.checkInvariants() == nil, "a refused shrink changed the allocator", 0)
      try? frames.freeContiguous(area, pages: 10)
      do throws(PageFrameError) {
        try frames.shrinkContiguous(area, pages: 10, keep: 4)
        e.expect(false, "shrink of a freed run accepted", 0)
      } catch { e.expect(error.reason == .notAllocated, "shrink of a freed run is notAllocated", UInt(error.reason.rawValue)) }
    },
    // A shrinking reallocate of a large allocation keeps it in place and gives its tail
    // pages back; growing it again moves it.
    Scenario("heap.large_shrink_gives_pages_back", memoryBytes: 16 << 20) { memory, e in
      guard let (frames, heap) = makeMachine(memory, &e) else { return }
      frames.drainHotPages()
      let before = frames.freePageCount
      guard let large = heap.allocate(4 << 20 - 4096) else {
        e.expect(false, "a 4 MiB allocation on 16 MiB", 0)
        return
      }
      e.expect(frames.freePageCount == before - 1023, "a large request takes exactly its pages", UInt(frames.freePageCount))
      large.storeBytes(of: 0x5eed, toByteOffset: 700 << 10, as: UInt64.self)
      let shrunk = try? heap.reallocate(large, to: 750_000)
      e.expect(shrunk == large, "a shrinking reallocate of a large allocation moved it", 0)
      frames.drainHotPages()
      let kept = (750_000 + Page.size - 1) / Page.size
      e.expect(frames.freePageCount == before - kept, "the shrunk allocation holds more pages than it needs", UInt(frames.freePageCount))
      e.expect(large.load(fromByteOffset: 700 << 10, as: UInt64.self) == 0x5eed, "contents lost in the shrink", 0)
      e.expect((try? heap.usableSize(large)) == kept * Page.size, "usable size after the shrink", 0)
      e.expect(heap.check() == nil && frames.checkInvariants() == nil, "invariants after the shrink", 0)
      do throws(HeapError) { try heap.deallocate(large) } catch { e.expect(false, "free of the shrunk allocation refused", 0) }
      frames.drainHotPages()
      e.expect(frames.freePageCount == before && heap.statistics.largeBytes == 0, "pages back after the free", UInt(frames.freePageCount))
    },
  ]
}
