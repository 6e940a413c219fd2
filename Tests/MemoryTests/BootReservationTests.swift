import MemInit
import PageFrames
import Testing

/// Reservations at their limits and memInit's refusals that name their cause: every
/// outcome checked against the test's own reference numbers.
struct BootReservationTests {
  let tests = BootMemoryTests()
  static let base = BootMemoryTests.base

  @Test("reservations that fill RAM are reservationsFillRAM with what is needed and what is left")
  func reservationsFillRAM() throws {
    // 16 MiB of RAM, all but the last 32 KiB after the kernel reserved by firmware.
    let m = try tests.machine(ram: [(0, 16 << 20)], reserved: [(0x22_0000, (16 << 20) - 0x22_0000 - 0x8000, .firmwareReserved)])
    let needed = try tests.neededBytes(m.config)
    #expect(throws: MemInitError(.reservationsFillRAM, Self.base + (16 << 20), needed: needed, available: 0x8000)) {
      try planLayout(m.config)
    }
    // Without the reservation the same RAM holds it: the reservation is the cause.
    #expect(throws: Never.self) { try planLayout(try tests.machine(ram: [(0, 16 << 20)]).config) }
  }

  @Test("a wrapping reservation, or one owned by no reserved kind, is refused with its own reason")
  func badReservations() throws {
    var memory = BootMemory()
    #expect(throws: MemInitError(.reservationWraps, 0x5000)) { try memory.reserve(start: 0x5000, end: 0x4000, as: .firmwareReserved) }
    // Pages reserved as .free or .allocated were handed out as free RAM before.
    for owner in [PageOwner.free, .allocated] {
      #expect(throws: MemInitError(.badReservationOwner, 0x4030_0000)) { try memory.reserve(start: 0x4030_0000, end: 0x4040_0000, as: owner) }
    }
    try memory.reserve(start: 0x4030_0000, end: 0x4030_0000, as: .initrd)  // empty: dropped
    #expect(memory.reservationCount == 0)
  }

  @Test("127 /memreserve/ entries and the blob fill the documented 128; memInit's own four come on top")
  func fullReservationTable() throws {
    // Entries of 0x800 bytes every 64 KiB from 16 MiB, with zero-size ones in between.
    var memreserve: [(UInt64, UInt64)] = []
    for index in 0..<127 {
      memreserve.append((0x4100_0000 + UInt64(index) * 0x1_0000, 0x800))
      if index % 10 == 0 { memreserve.append((0x4100_0000 + UInt64(index) * 0x1_0000 + 0x8000, 0)) }
    }
    let dt = DeviceTreeTests()
    let blob = dt.tree(memory: [[(0x4000_0000, 64 << 20)]], memreserve: memreserve)
    let (memory, summary) = try dt.read(blob, at: 0x4000_0000)
    #expect(summary.memoryReservations == 127 && memory.reservationCount == BootMemory.reservationCapacity)
    let span = BootMemoryTests.Span(bytes: 64 << 20)
    let config = MemInitConfig(memory: memory, kernelStart: BootMemoryTests.kernelStart, kernelEnd: BootMemoryTests.kernelEnd,
                               directMapOffset: Int(bitPattern: span.host) - Int(bitPattern: Self.base), zeroFill: hostZeroFill)
    let layout = try planLayout(config)
    let frames = try buildPageFrames(config, layout)
    for (address, _) in memreserve where address % 0x1_0000 == 0 { #expect(frames.owner(ofPhysical: UInt(address)) == .firmwareReserved) }
    #expect(frames.count(.firmwareReserved) == 127 && frames.checkInvariants() == nil)
    // One more is refused, never dropped.
    let over = dt.tree(memory: [[(0x4000_0000, 64 << 20)]], memreserve: memreserve + [(0x4300_0000, 0x1000)])
    #expect(throws: MemInitError(.tooManyReservations, 0x4300_0000)) { try dt.read(over, at: 0x4000_0000) }
    withExtendedLifetime(span) {}
  }

  @Test("a direct-map offset that is not a multiple of the page size is refused up front")
  func misalignedDirectMap() throws {
    let m = try tests.machine(ram: [(0, 16 << 20)])
    var bad = m.config
    bad.directMapOffset += 8
    #expect(throws: MemInitError(.directMapMisaligned, UInt(bitPattern: bad.directMapOffset))) { try planLayout(bad) }
    let layout = try planLayout(m.config)
    #expect(throws: MemInitError(.directMapMisaligned, UInt(bitPattern: bad.directMapOffset))) { try buildPageFrames(bad, layout) }
    var ranges = PhysicalRanges()
    ranges.append(PhysicalRange(start: Self.base, end: Self.base + (16 << 20)))
    #expect(PageFrameAllocator(ranges: ranges, metadata: bad.directMapPointer(layout.metadataStart), directMapOffset: bad.directMapOffset, zeroFill: hostZeroFill) == nil)
    withExtendedLifetime(m) {}
  }
}

extension BootReservationTests {
  @Test("a mapped limit that is not page aligned clamps RAM at the page below it")
  func unalignedMappedLimit() throws {
    let m = try tests.machine(ram: [(0, 32 << 20)])
    var config = m.config
    config.mappedLimit = Self.base + (16 << 20) + 0x800
    let layout = try planLayout(config)
    let frames = try buildPageFrames(config, layout)
    #expect(frames.end == Self.base + (16 << 20) && layout.memory.clampedBytes == 16 << 20)
    #expect(frames.checkInvariants() == nil)
    withExtendedLifetime(m) {}
  }
}

extension MemInitConfig {
  /// Where physical `address` lies through this configuration's direct map.
  func directMapPointer(_ address: UInt) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: Int(bitPattern: address) &+ directMapOffset)!
  }
}

/// RAM below the kernel image: firmware's by default, free when the firmware describes
/// everything it keeps (`reservesMemoryBelowKernel` false, RISC-V's SBI firmware).
struct LowMemoryTests {
  let tests = BootMemoryTests()
  static let base = BootMemoryTests.base

  @Test("below the kernel: firmware's by default; free but for the reservations when firmware describes its memory")
  func memoryBelowKernel() throws {
    // 16 MiB; firmware keeps [0, 384 KiB) no-map, as OpenSBI does; the kernel at 2 MiB.
    let firmwareBytes: UInt = 0x6_0000
    let reserved: [(UInt, UInt, PageOwner)] = [(0, firmwareBytes, .noMap)]
    let kernelOffset = BootMemoryTests.kernelStart - Self.base
    for describes in [false, true] {
      let m = try tests.machine(ram: [(0, 16 << 20)], reserved: reserved)
      var config = m.config
      config.reservesMemoryBelowKernel = !describes
      let layout = try planLayout(config)
      let frames = try buildPageFrames(config, layout)
      #expect(frames.checkInvariants() == nil)
      // Every page below the kernel: the reservation's, then free or firmware's.
      var free = 0
      var firmware = 0
      for offset in stride(from: UInt(0), to: kernelOffset, by: 4096) {
        let owner = frames.owner(ofPhysical: Self.base + offset)
        if offset < firmwareBytes {
          #expect(owner == .noMap)
        } else if owner == .free {
          free += 1
        } else if owner == .firmware {
          firmware += 1
        }
      }
      let between = Int((kernelOffset - firmwareBytes) / 4096)
      #expect(free == (describes ? between : 0), "free pages below the kernel")
      #expect(firmware == (describes ? 0 : between), "firmware pages below the kernel")
      // Those free pages are handed out like any other.
      if describes {
        var seen = 0
        var taken: [UnsafeMutableRawPointer] = []
        while let page = frames.allocPages(order: 0, owner: .allocated) {
          taken.append(page)
          let physical = frames.physical(of: page)
          if physical >= Self.base + firmwareBytes && physical < BootMemoryTests.kernelStart { seen += 1 }
        }
        #expect(seen == between)
        for page in taken { try frames.freePages(page, order: 0, owner: .allocated) }
      }
      withExtendedLifetime(m.span) {}
    }
  }
}
