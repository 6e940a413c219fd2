import KernelMemory
import PageFrames

/// Simulated physical address of the scenario RAM (the virt board's RAM base).
let simulatedBase: UInt = 0x4000_0000

/// A page allocator over the scenario memory as simulated RAM: the metadata in the last
/// 64 KiB, `pages` pages of RAM from the start, all released.
func makeFrames(_ memory: ScenarioMemory, pages: Int = 512) -> PageFrameAllocator {
  let metadata = memory.base + (memory.bytes - (64 << 10))
  let frames = PageFrameAllocator(
    base: simulatedBase, pageCount: pages, metadata: metadata,
    directMapOffset: Int(bitPattern: memory.base) - Int(bitPattern: simulatedBase), zeroFill: memory.zeroFill,
    slots: scenarioSlots)
  frames.release(start: simulatedBase, end: simulatedBase + UInt(pages * Page.size))
  return frames
}

func expectFreeRefused(
  _ frames: PageFrameAllocator, _ page: UnsafeMutableRawPointer, order: Int = 0,
  _ reason: PageFrameError.Reason, _ e: inout Expectations, _ message: StaticString
) {
  let before = frames.freePageCount
  do throws(PageFrameError) {
    try frames.freePages(page, order: order)
    e.expect(false, message, frames.physical(of: page))
  } catch {
    e.expect(error.reason == reason, message, UInt(error.reason.rawValue))
  }
  e.expect(frames.freePageCount == before && frames.checkInvariants() == nil, "refused free changed the allocator", frames.physical(of: page))
}

func pageScenarios() -> [Scenario] {
  [
    Scenario("pages.entry_is_16_bytes") { _, e in
      e.expect(MemoryLayout<PageEntry>.size == 16, "PageEntry must be 16 bytes", UInt(MemoryLayout<PageEntry>.size))
      e.expect(PageFrameAllocator.metadataBytes(pageCount: 262_144, slots: scenarioSlots) <= (4 << 20) + 4096, "1 GiB costs 4 MiB plus the allocator state (under a page with 8 CPU slots)", 0)
    },
    Scenario("pages.alloc_zeroed_and_free") { memory, e in
      let frames = makeFrames(memory)
      let total = frames.freePageCount
      let page = frames.allocPage()!
      e.expect(Page.isAligned(frames.physical(of: page)), "page aligned", frames.physical(of: page))
      var zero = true
      for i in stride(from: 0, to: Page.size, by: 8) where page.load(fromByteOffset: i, as: UInt64.self) != 0 { zero = false }
      e.expect(zero, "allocPage returns a zeroed page", 0)
      page.initializeMemory(as: UInt8.self, repeating: 0x5A, count: Page.size)
      let again = frames.allocPage()!
      e.expect(again.load(as: UInt64.self) == 0, "second page zeroed too", 0)
      e.expect(frames.count(.allocated) == 2 && frames.freePageCount == total - 2, "accounting after two allocations", 0)
      try? frames.freePage(page)
      try? frames.freePage(again)
      e.expect(frames.freePageCount == total, "both pages free again", UInt(frames.freePageCount))
      e.expect(frames.allocPages(order: 0, zeroed: false) == again, "the hot cache hands back the last freed page", 0)
      try? frames.freePage(again)
      e.expect(frames.checkInvariants() == nil, "invariants with pages in the hot cache", 0)
      frames.drainHotPages()
      e.expect(frames.largestFreeRun == 512, "everything merged back", UInt(frames.largestFreeRun))
      e.expect(frames.checkInvariants() == nil, "invariants after cycle", 0)
    },
    Scenario("pages.orders_aligned_and_coalesced") { memory, e in
      let frames = makeFrames(memory)
      var runs: [(UnsafeMutableRawPointer, Int)] = []
      // Orders 8 down to 0 (511 of the 512 pages). Largest first: an order-0 allocation
      // refills the CPU's page cache with a batch of 16 pages, which would leave no
      // room for order 8 after orders 1 to 7.
      for order in (0...8).reversed() {
        guard let run = frames.allocPages(order: order, zeroed: false) else { continue }
        let physical = frames.physical(of: run)
        e.expect(physical & UInt((Page.size << order) - 1) == 0, "run naturally aligned", physical)
        runs.append((run, order))
      }
      e.expect(runs.count == 9, "orders 0 to 8 fit in 2 MiB of RAM", UInt(runs.count))
      e.expect(frames.allocPages(order: Page.maxOrder + 1) == nil && frames.allocPages(order: -1) == nil, "bad orders return nil", 0)
      e.expect(frames.checkInvariants() == nil, "invariants with runs out", 0)
      for (run, order) in runs.reversed() { try? frames.freePages(run, order: order) }
      frames.drainHotPages()
      e.expect(frames.largestFreeRun == 512 && frames.freePageCount == 512, "runs coalesce back to one block", UInt(frames.largestFreeRun))
      e.expect(frames.checkInvariants() == nil, "invariants after freeing runs", 0)
    },
    Scenario("pages.exhaust_and_restore") { memory, e in
      let frames = makeFrames(memory)
      var pages: [UnsafeMutableRawPointer] = []
      while let page = frames.allocPages(order: 0, zeroed: false) {
        page.storeBytes(of: UInt64(frames.physical(of: page)), as: UInt64.self)
        pages.append(page)
      }
      e.expect(pages.count == 512 && frames.freePageCount == 0, "every page handed out once", UInt(pages.count))
      e.expect(frames.allocPages(order: 1) == nil, "no run left", 0)
      e.expect(frames.allocPage() == nil, "out of pages returns nil", 0)
      var intact = true
      for page in pages where page.load(as: UInt64.self) != UInt64(frames.physical(of: page)) { intact = false }
      e.expect(intact, "no page handed out twice", 0)
      for page in pages { try? frames.freePage(page) }
      e.expect(frames.freePageCount == 512 && frames.checkInvariants() == nil, "no page lost", UInt(frames.freePageCount))
    },
    Scenario("pages.bad_frees") { memory, e in
      let frames = makeFrames(memory)
      let page = frames.allocPage()!
      let run = frames.allocPages(order: 2)!
      expectFreeRefused(frames, page + 1, .misaligned, &e, "misaligned address")
      expectFreeRefused(frames, page + 2048, .misaligned, &e, "half-page address")
      expectFreeRefused(frames, frames.pointer(toPhysical: simulatedBase + (2 << 20)), .outsideRAM, &e, "address past RAM")
      expectFreeRefused(frames, frames.pointer(toPhysical: simulatedBase - 4096), .outsideRAM, &e, "address below RAM")
      expectFreeRefused(frames, run + 4096, .notRunStart, &e, "page inside a run")
      expectFreeRefused(frames, run, order: 1, .notRunStart, &e, "run freed with the wrong order")
      expectFreeRefused(frames, page, order: 11, .badOrder, &e, "order above the maximum")
      try? frames.freePage(page)
      expectFreeRefused(frames, page, .notAllocated, &e, "page freed twice")
      try? frames.freePages(run, order: 2)
      expectFreeRefused(frames, run, order: 2, .notAllocated, &e, "run freed twice")
    },
    Scenario("pages.reserved_pages_refused") { memory, e in
      // 512 pages: firmware, kernel, metadata, heap, DTB and MMIO reserved, the rest free.
      let metadata = memory.base + (memory.bytes - (64 << 10))
      let frames = PageFrameAllocator(
        base: simulatedBase, pageCount: 512, metadata: metadata,
        directMapOffset: Int(bitPattern: memory.base) - Int(bitPattern: simulatedBase), zeroFill: memory.zeroFill,
        slots: scenarioSlots)
      let kinds: [PageOwner] = [.firmware, .kernel, .metadata, .heap, .deviceTree, .mmio]
      let reasons: [PageFrameError.Reason] = [.reserved, .reserved, .reserved, .wrongOwner, .reserved, .reserved]
      for (i, kind) in kinds.enumerated() {
        frames.reserve(start: simulatedBase + UInt(i * 8 * Page.size), end: simulatedBase + UInt((i + 1) * 8 * Page.size), as: kind)
      }
      frames.release(start: simulatedBase + UInt(48 * Page.size), end: simulatedBase + UInt(512 * Page.size))
      e.expect(frames.checkInvariants() == nil, "invariants after reservations", 0)
      for (i, kind) in kinds.enumerated() {
        e.expect(frames.count(kind) == 8, "eight pages of each kind", UInt(i))
        for page in [i * 8, i * 8 + 7] {
          let physical = simulatedBase + UInt(page * Page.size)
          e.expect(frames.owner(ofPhysical: physical) == kind, "owner query", physical)
          expectFreeRefused(frames, frames.pointer(toPhysical: physical), reasons[i], &e, "reserved or heap page freed")
        }
      }
      e.expect(frames.owner(ofPhysical: simulatedBase + (4 << 20)) == nil, "owner outside RAM is nil", 0)
    },
    Scenario("pages.owners_accepted_and_refused") { memory, e in
      let frames = makeFrames(memory)
      let before = frames.freePageCount
      for owner in PageOwner.allCases where !owner.isAllocatable {
        e.expect(frames.allocPages(order: 0, owner: owner) == nil && frames.allocContiguous(pages: 3, owner: owner) == nil,
          "an owner an allocation cannot have was accepted", UInt(owner.rawValue))
      }
      e.expect(frames.freePageCount == before && frames.checkInvariants() == nil, "refused owners changed the allocator", 0)
      let table = frames.allocPages(order: 0, owner: .pageTable)!
      let heapRun = frames.allocPages(order: 2, owner: .heap, tag: 7)!
      e.expect(frames.run(containing: frames.physical(of: heapRun + 3 * Page.size)) ==
        PageRun(owner: .heap, start: frames.physical(of: heapRun), pages: 4, tag: 7), "a page's run: owner, head, length, tag", 0)
      expectFreeRefused(frames, table, .wrongOwner, &e, "freePage of a page-table page")
      expectFreeRefused(frames, heapRun, order: 2, .wrongOwner, &e, "freePages of a heap run as .allocated")
      do throws(PageFrameError) {
        try frames.freePages(table, order: 0, owner: .pageTable)
        try frames.freePages(heapRun, order: 2, owner: .heap)
      } catch {
        e.expect(false, "freeing with the right owner refused", UInt(error.reason.rawValue))
      }
      e.expect(frames.freePageCount == before && frames.checkInvariants() == nil, "owner round trip", 0)
    },
    Scenario("pages.contiguous_runs") { memory, e in
      let frames = makeFrames(memory)
      let before = frames.freePageCount
      // 5 pages come from an order-3 run whose last 3 pages go straight back.
      let five = frames.allocContiguous(pages: 5, zeroed: true)!
      e.expect(frames.freePageCount == before - 5 && frames.count(.allocated) == 5, "exactly 5 pages taken", UInt(frames.freePageCount))
      var zero = true
      for offset in stride(from: 0, to: 5 * Page.size, by: 512) where five.load(fromByteOffset: offset, as: UInt64.self) != 0 { zero = false }
      e.expect(zero, "contiguous run zeroed", 0)
      expectFreeRefused(frames, five, order: 2, .notRunStart, &e, "a 5-page run freed as order 2")
      do throws(PageFrameError) {
        try frames.freeContiguous(five + Page.size, pages: 4)
        e.expect(false, "freeContiguous inside a run accepted", 0)
      } catch { e.expect(error.reason == .notRunStart, "inside a run is notRunStart", 0) }
      let big = frames.allocContiguous(pages: 300, zeroed: false)
      e.expect(big != nil && frames.freePageCount == before - 305, "300 pages from a 512-page machine", UInt(frames.freePageCount))
      e.expect(frames.allocContiguous(pages: 513) == nil && frames.allocContiguous(pages: 0) == nil, "impossible counts return nil", 0)
      e.expect(frames.checkInvariants() == nil, "invariants with contiguous runs out", 0)
      try? frames.freeContiguous(five, pages: 5)
      if let big { try? frames.freeContiguous(big, pages: 300) }
      // Fragmented: every other page held, 256 free, but no two adjacent.
      var held: [UnsafeMutableRawPointer] = []
      var spare: [UnsafeMutableRawPointer] = []
      while let page = frames.allocPages(order: 0, zeroed: false) {
        if frames.physical(of: page) & UInt(Page.size) == 0 { held.append(page) } else { spare.append(page) }
      }
      for page in spare { try? frames.freePage(page) }
      e.expect(frames.freePageCount == 256 && frames.allocContiguous(pages: 2) == nil, "fragmented memory has no run of 2", UInt(frames.freePageCount))
      let single = frames.allocContiguous(pages: 1)
      e.expect(single != nil, "but a single page", 0)
      if let single { try? frames.freeContiguous(single, pages: 1) }
      for page in held { try? frames.freePage(page) }
      frames.drainHotPages()
      e.expect(frames.freePageCount == before && frames.largestFreeRun == 512 && frames.checkInvariants() == nil,
        "runs back on the lists", UInt(frames.freePageCount))
    },
    Scenario("pages.random_accounting") { memory, e in
      let frames = makeFrames(memory)
      var rng = SplitMix(seed: memory.seed)
      var live: [(UnsafeMutableRawPointer, Int)] = []
      for step in 0..<2000 {
        if live.isEmpty || rng.below(2) == 0 {
          let order = rng.below(6)
          if let run = frames.allocPages(order: order, zeroed: false) { live.append((run, order)) }
        } else {
          let (run, order) = live.remove(at: rng.below(live.count))
          do throws(PageFrameError) { try frames.freePages(run, order: order) } catch { e.expect(false, "valid free refused", UInt(step)) }
        }
        var held = 0
        for (_, order) in live { held += 1 << order }
        e.expect(frames.count(.allocated) == held && frames.freePageCount + held == 512, "accounting identity", UInt(step))
        if step % 50 == 0 { e.expect(frames.checkInvariants() == nil, "invariants during random run", UInt(step)) }
      }
      for (run, order) in live { try? frames.freePages(run, order: order) }
      frames.drainHotPages()
      e.expect(frames.freePageCount == 512 && frames.largestFreeRun == 512, "nothing lost after random run", UInt(frames.freePageCount))
    },
  ]
}
