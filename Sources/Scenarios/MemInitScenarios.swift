import KernelHeap
import MemInit
import PageFrames

/// memInit's layout over the 4 MiB scenario memory as RAM at 0x40000000: 1 MiB of
/// firmware with a DTB at its start, a 256 KiB kernel, then the array and a 1 MiB heap.
func scenarioConfig(_ memory: ScenarioMemory, ramSize: UInt = 4 << 20) -> MemInitConfig {
  var config = MemInitConfig(
    ramBase: simulatedBase, ramSize: ramSize,
    kernelStart: simulatedBase + 0x10_0000, kernelEnd: simulatedBase + 0x14_0000,
    dtbStart: simulatedBase, dtbEnd: simulatedBase + 0x2345,
    directMapOffset: Int(bitPattern: memory.base) - Int(bitPattern: simulatedBase), zeroFill: memory.zeroFill)
  config.cpuSlots = scenarioSlots
  return config
}

func memInitScenarios() -> [Scenario] {
  [
    Scenario("meminit.reservation_boundaries") { memory, e in
      let config = scenarioConfig(memory)
      guard let layout = try? planLayout(config) else { return e.expect(false, "layout refused", 0) }
      guard let frames = try? buildPageFrames(config, layout) else { return e.expect(false, "page array refused the layout", 0) }
      let owner = { (address: UInt) in frames.owner(ofPhysical: address) }
      e.expect(layout.metadataStart == config.kernelEnd, "array starts at the first page after __end", layout.metadataStart)
      e.expect(layout.heapStart == layout.metadataEnd, "heap starts after the array's last page", layout.heapStart)
      e.expect(owner(simulatedBase) == .deviceTree && owner(simulatedBase + 0x2000) == .deviceTree, "DTB pages", 0)
      e.expect(owner(simulatedBase + 0x3000) == .firmware && owner(config.kernelStart - 1) == .firmware, "firmware pages", 0)
      e.expect(owner(config.kernelStart) == .kernel && owner(config.kernelEnd - 1) == .kernel, "first and last kernel page", 0)
      e.expect(owner(layout.metadataStart) == .metadata && owner(layout.metadataEnd - 1) == .metadata, "metadata pages", 0)
      e.expect(owner(layout.heapStart) == .heap && owner(layout.heapEnd - 1) == .heap, "first and last heap page", 0)
      e.expect(owner(layout.heapEnd) == .free && owner(layout.ramEnd - 1) == .free, "pages after the heap are free", 0)
      e.expect(frames.count(.heap) == 256, "1 MiB of heap pages", UInt(frames.count(.heap)))
      e.expect(frames.checkInvariants() == nil, "accounting identity after memInit", 0)
    },
    Scenario("meminit.heap_never_overlaps_array") { memory, e in
      let config = scenarioConfig(memory)
      guard let layout = try? planLayout(config) else { return e.expect(false, "layout refused", 0) }
      guard let frames = try? buildPageFrames(config, layout) else { return e.expect(false, "page array refused the layout", 0) }
      let arrayEnd = layout.metadataStart + UInt(PageFrameAllocator.metadataBytes(pageCount: layout.pageCount, slots: scenarioSlots))
      e.expect(layout.heapStart >= arrayEnd, "heap begins after the array's last byte", layout.heapStart)
      // No heap page may ever come off the free lists.
      var pages: [UnsafeMutableRawPointer] = []
      while let page = frames.allocPages(order: 0, zeroed: false) {
        let physical = frames.physical(of: page)
        e.expect(physical >= layout.heapEnd, "allocator handed out a reserved page", physical)
        pages.append(page)
      }
      for page in pages { try? frames.freePage(page) }
      // The heap works in its pages and leaves the array alone.
      let before = frames.checkInvariants() == nil
      let heap = Heap(start: frames.pointer(toPhysical: layout.heapStart), size: Int(layout.heapEnd - layout.heapStart), zeroFill: memory.zeroFill)!
      var blocks: [UnsafeMutableRawPointer] = []
      while let p = heap.allocate(1000) {
        p.initializeMemory(as: UInt8.self, repeating: 0xEE, count: 1000)
        blocks.append(p)
      }
      e.expect(before && frames.checkInvariants() == nil, "filling the heap left the page array intact", 0)
      for p in blocks { try? heap.deallocate(p) }
    },
    Scenario("meminit.ram_too_small") { memory, e in
      let config = scenarioConfig(memory, ramSize: 0x18_0000)
      do throws(MemInitError) {
        _ = try planLayout(config)
        e.expect(false, "layout accepted RAM smaller than kernel + array + heap", 0)
      } catch {
        e.expect(error.reason == .ramTooSmall && error.address == simulatedBase + 0x18_0000, "ramTooSmall names RAM end", error.address)
      }
      var outside = scenarioConfig(memory)
      outside.kernelEnd = simulatedBase + (8 << 20)
      expectLayoutRefused(outside, .kernelOutsideRAM, &e, "kernel outside RAM refused as kernelOutsideRAM")
      var below = scenarioConfig(memory)
      below.kernelStart = simulatedBase &- 0x1000
      expectLayoutRefused(below, .kernelOutsideRAM, &e, "kernel below RAM refused as kernelOutsideRAM")
      var reversed = scenarioConfig(memory)
      reversed.kernelEnd = reversed.kernelStart &- 0x1000
      expectLayoutRefused(reversed, .kernelOutsideRAM, &e, "kernel end before start refused as kernelOutsideRAM")
      let misaligned = scenarioConfig(memory, ramSize: (4 << 20) + 1)
      expectLayoutRefused(misaligned, .ramMisaligned, &e, "misaligned RAM refused as ramMisaligned")
      var noZeroFill = scenarioConfig(memory)
      noZeroFill.zeroFill = nil
      expectLayoutRefused(noZeroFill, .noZeroFill, &e, "a nil zero fill refused as noZeroFill")
      for slots in [0, -4, 3, 96, 128] {
        var badSlots = scenarioConfig(memory)
        badSlots.cpuSlots = slots
        expectLayoutRefused(badSlots, .badCPUSlots, &e, "CPU slots not a power of two in 1 ... 64 refused as badCPUSlots")
      }
      let noRAM = MemInitConfig(memory: BootMemory(), kernelStart: simulatedBase, kernelEnd: simulatedBase + 0x1000, zeroFill: memory.zeroFill)
      expectLayoutRefused(noRAM, .noRAM, &e, "no RAM refused as noRAM")
      // Heap sizes that cannot hold a heap are a MemInitError, never a heap left unset.
      for bytes in [0, -1, -(1 << 20), Int.min, 16, Heap.minimumBytes - 1] {
        var config = scenarioConfig(memory)
        config.heapBytes = bytes
        expectLayoutRefused(config, .heapTooSmall, &e, "an unusable heap size refused as heapTooSmall")
      }
      for bytes in [8 << 20, Int.max, Int.max - 4095] {
        var config = scenarioConfig(memory)
        config.heapBytes = bytes
        expectLayoutRefused(config, .ramTooSmall, &e, "a heap larger than RAM refused as ramTooSmall")
      }
    },
    Scenario("meminit.touching_ranges") { memory, e in
      // Two ranges meeting inside the kernel image (two NUMA nodes, or a reg split in
      // two): one stretch of RAM, the image laid out across the boundary.
      let base = scenarioConfig(memory)
      var ram = BootMemory()
      do throws(MemInitError) {
        try ram.addRAM(start: simulatedBase + 0x11_0000, size: (4 << 20) - 0x11_0000)
        try ram.addRAM(start: simulatedBase, size: 0x11_0000)
        try ram.reserve(start: simulatedBase, end: simulatedBase + 0x2345, as: .deviceTree)
      } catch {
        return e.expect(false, "touching ranges refused", UInt(error.reason.rawValue))
      }
      e.expect(ram.ram.count == 1 && ram.ram[0].start == simulatedBase && ram.ram[0].end == simulatedBase + (4 << 20), "touching ranges merged", ram.ram[0].end)
      let config = MemInitConfig(
        memory: ram, kernelStart: base.kernelStart, kernelEnd: base.kernelEnd,
        directMapOffset: base.directMapOffset, zeroFill: memory.zeroFill)
      guard let layout = try? planLayout(config) else { return e.expect(false, "kernel across the boundary refused", 0) }
      guard let frames = try? buildPageFrames(config, layout) else { return e.expect(false, "page array refused the layout", 0) }
      let owner = { (address: UInt) in frames.owner(ofPhysical: address) }
      e.expect(owner(simulatedBase + 0x3000) == .firmware && owner(config.kernelStart - 1) == .firmware, "low memory below the kernel is firmware's", 0)
      e.expect(owner(config.kernelStart) == .kernel && owner(simulatedBase + 0x11_0000) == .kernel && owner(config.kernelEnd - 1) == .kernel, "the kernel's pages on both sides of the boundary", 0)
      // RAM minus the DTB, low memory, kernel, array and heap: the pages left free.
      let reserved = Int((layout.heapEnd - simulatedBase) >> 12)
      e.expect(frames.freePageCount == 1024 - reserved, "every other page free", UInt(frames.freePageCount))
      e.expect(frames.checkInvariants() == nil, "accounting identity after memInit", 0)
    },
    Scenario("meminit.reservations_fill_ram") { memory, e in
      // RAM that would hold array + heap, filled by a firmware reservation up to its last
      // 32 KiB: the reservations are named as the cause, with what was needed and left.
      var config = scenarioConfig(memory)
      do throws(MemInitError) {
        try config.memory.reserve(start: config.kernelEnd, end: simulatedBase + (4 << 20) - 0x8000, as: .firmwareReserved)
        _ = try planLayout(config)
        e.expect(false, "layout placed over a reservation", 0)
      } catch {
        e.expect(error.reason == .reservationsFillRAM, "refused as reservationsFillRAM", UInt(error.reason.rawValue))
        e.expect(error.available == 0x8000, "the largest free stretch left", error.available)
        e.expect(error.needed > 0x8000 && error.needed <= 0x20_0000, "array + heap needed", error.needed)
      }
      var wrapped = BootMemory()
      do throws(MemInitError) {
        try wrapped.reserve(start: simulatedBase + 0x2000, end: simulatedBase + 0x1000, as: .firmwareReserved)
        e.expect(false, "a reservation ending before its start accepted", 0)
      } catch {
        e.expect(error.reason == .reservationWraps, "a wrapping reservation refused as reservationWraps", UInt(error.reason.rawValue))
      }
    },
  ]
}

/// planLayout throws `reason` for `config`.
func expectLayoutRefused(_ config: MemInitConfig, _ reason: MemInitError.Reason, _ e: inout Expectations, _ message: StaticString) {
  do throws(MemInitError) {
    _ = try planLayout(config)
    e.expect(false, message, 0)
  } catch {
    e.expect(error.reason == reason, message, UInt(error.reason.rawValue))
  }
}
