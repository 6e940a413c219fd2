import KernelMemory
import Glibc
import KernelHeap
import MemInit
import PageFrames
import Testing

/// memInit over firmware descriptions with several RAM ranges, holes and reservations of
/// every kind, checked page by page against an independent model: a page is free exactly
/// when it lies in a RAM range and touches no reservation.
struct BootMemoryTests {
  /// A span of host address space standing in for physical addresses [base, base + span):
  /// reserved inaccessible, with only the RAM ranges made readable and writable, so a
  /// 30 GiB hole costs no memory and any access to it faults.
  final class Span {
    let host: UnsafeMutableRawPointer
    let bytes: Int
    init(bytes: Int, ram: [(UInt, UInt)]? = nil) {
      self.bytes = bytes
      let mapped = mmap(nil, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
      precondition(mapped != MAP_FAILED, "no address space for the simulated RAM")
      host = mapped!
      for (offset, size) in ram ?? [(0, UInt(bytes))] {
        precondition(mprotect(host + Int(offset), Int(size), PROT_READ | PROT_WRITE) == 0, "mprotect failed")
      }
    }
    deinit { munmap(host, bytes) }
  }

  static let base: UInt = 0x4000_0000
  static let kernelStart = base + 0x20_0000
  static let kernelEnd = base + 0x22_0000

  struct Machine {
    let span: Span
    let config: MemInitConfig
  }

  /// RAM ranges given as (offset from base, bytes) and reservations as (offset, bytes, owner).
  func machine(ram: [(UInt, UInt)], reserved: [(UInt, UInt, PageOwner)] = [], heapBytes: Int = 1 << 20) throws -> Machine {
    let last = ram.map { $0.0 + $0.1 }.max()!
    let span = Span(bytes: Int(last), ram: ram)
    var memory = BootMemory()
    for (offset, bytes) in ram { try memory.addRAM(start: Self.base + offset, size: bytes) }
    for (offset, bytes, owner) in reserved { try memory.reserve(start: Self.base + offset, end: Self.base + offset + bytes, as: owner) }
    let config = MemInitConfig(
      memory: memory, kernelStart: Self.kernelStart, kernelEnd: Self.kernelEnd, heapBytes: heapBytes,
      directMapOffset: Int(bitPattern: span.host) - Int(bitPattern: Self.base), zeroFill: hostZeroFill)
    return Machine(span: span, config: config)
  }

  /// Page array + heap bytes for `config`, page rounded: the reference sum memInit's
  /// `needed` must equal.
  func neededBytes(_ config: MemInitConfig) throws -> UInt {
    let pages = config.memory.ram.totalPages
    let array = (PageFrameAllocator.metadataBytes(pageCount: pages) + 4095) / 4096 * 4096
    return UInt(array + (config.heapBytes + 4095) / 4096 * 4096)
  }

  /// memInit, then every free page allocated once: each lies in RAM and touches no
  /// reservation, and their number is the model's count of such pages.
  func expectExactlyFreePages(_ m: Machine, ram: [(UInt, UInt)], reserved: [(UInt, UInt, PageOwner)]) throws {
    let layout = try planLayout(m.config)
    let frames = try buildPageFrames(m.config, layout)
    #expect(frames.checkInvariants() == nil)
    // The model: every reservation, the layout's own included (firmware low memory
    // from the kernel's range start, the kernel, the page array and the heap).
    var blocked: [(UInt, UInt)] = reserved.map { (Self.base + $0.0, Self.base + $0.0 + $0.1) }
    // Low memory: every RAM byte below the kernel down to the first hole, whichever
    // ranges of the description it lies in.
    var lowStart = Self.kernelStart
    while ram.contains(where: { Self.base + $0.0 < lowStart && lowStart <= Self.base + $0.0 + $0.1 }) { lowStart -= 4096 }
    blocked += [(lowStart, Self.kernelEnd), (layout.metadataStart, layout.heapEnd)]
    func touchesReservation(_ page: UInt) -> Bool { blocked.contains { $0.0 < page + 4096 && page < $0.1 } }
    for (start, end) in blocked.dropLast(2) {
      #expect(!(start < layout.heapEnd && layout.metadataStart < end), "page array or heap placed on a reservation")
    }
    var expected = 0
    for (offset, bytes) in ram {
      var page = Self.base + offset
      while page < Self.base + offset + bytes {
        if !touchesReservation(page) { expected += 1 }
        page += 4096
      }
    }
    #expect(frames.freePageCount == expected)
    var count = 0
    var misplaced = 0
    while let page = frames.allocPages(order: 0, zeroed: false) {
      let physical = frames.physical(of: page)
      let inRAM = ram.contains { Self.base + $0.0 <= physical && physical < Self.base + $0.0 + $0.1 }
      if !inRAM || touchesReservation(physical) { misplaced += 1 }
      count += 1
    }
    #expect(misplaced == 0)
    #expect(count == expected)
    let map = MemoryMap(frames, reportedRAMPages: ram.reduce(0) { $0 + Int($1.1 >> 12) })
    #expect(map.isExact)
  }

  @Test("two, three and 64 RAM ranges with holes from 4 KiB to 30 GiB")
  func rangesAndHoles() throws {
    let two: [(UInt, UInt)] = [(0, 16 << 20), ((16 << 20) + 4096, 8 << 20)]
    try expectExactlyFreePages(try machine(ram: two), ram: two, reserved: [])
    let three: [(UInt, UInt)] = [(0, 16 << 20), (1 << 30, 4 << 20), ((30 << 30) + (1 << 30), 4 << 20)]
    let m3 = try machine(ram: three)
    try expectExactlyFreePages(m3, ram: three, reserved: [])
    // A 30 GiB hole costs no metadata: 24 MiB of RAM, 6144 entries.
    let layout = try planLayout(m3.config)
    #expect(layout.pageCount == 6144)
    #expect(layout.metadataEnd - layout.metadataStart <= UInt(6144 * 16 + 4096))
    var many: [(UInt, UInt)] = [(0, 8 << 20)]
    for i in 1..<64 { many.append(((8 << 20) + UInt(i) * (1 << 20) + UInt(i % 7) * 4096, 256 << 10)) }
    try expectExactlyFreePages(try machine(ram: many), ram: many, reserved: [])
  }

  @Test("every reservation kind in every position, aligned or not")
  func reservationsEverywhere() throws {
    let ram: [(UInt, UInt)] = [(0, 8 << 20), (9 << 20, 4 << 20)]
    let kinds: [PageOwner] = [.deviceTree, .firmwareReserved, .noMap, .initrd, .mmio]
    let positions: [(UInt, UInt)] = [
      (0x1234, 0x2345),  // below the kernel, unaligned both ends
      (0x23_0000, 0x1001),  // between the kernel and where the array would go: the array moves past it
      (0x60_0123, 0x10_0000),  // above the heap
      ((8 << 20) - 0x800, 0x1800),  // straddling the first range's end, into the hole
      ((13 << 20) - 100, 0x1000),  // straddling the last range's end
    ]
    for kind in kinds {
      for position in positions {
        let reserved = [(position.0, position.1, kind)]
        try expectExactlyFreePages(try machine(ram: ram, reserved: reserved), ram: ram, reserved: reserved)
      }
      let all = positions.map { ($0.0, $0.1, kind) }
      try expectExactlyFreePages(try machine(ram: ram, reserved: all), ram: ram, reserved: all)
    }
  }

  @Test("the page array and heap go to the first fit after __end, around reservations")
  func placementAroundReservations() throws {
    let ram: [(UInt, UInt)] = [(0, 4 << 20), (5 << 20, 8 << 20)]
    // A DTB right after the kernel and one that leaves too small a gap in the first range.
    let reserved: [(UInt, UInt, PageOwner)] = [(0x22_0800, 0x1000, .deviceTree), (0x30_0000, 0x4000, .firmwareReserved)]
    let m = try machine(ram: ram, reserved: reserved)
    let layout = try planLayout(m.config)
    #expect(layout.metadataStart == Self.base + (5 << 20))  // nothing fits in the first range
    #expect(layout.heapStart == layout.metadataEnd)
    try expectExactlyFreePages(m, ram: ram, reserved: reserved)
    // Nowhere to go: a refusal, not an overlap.
    let tiny: [(UInt, UInt)] = [(0, 3 << 20)]
    let tinyMachine = try machine(ram: tiny)
    #expect(throws: MemInitError(.ramTooSmall, Self.base + (3 << 20), needed: try neededBytes(tinyMachine.config), available: Self.base + (3 << 20) - Self.kernelEnd)) {
      try planLayout(tinyMachine.config)
    }
  }

  @Test("bad firmware descriptions are MemInitErrors, never traps")
  func badDescriptions() throws {
    var memory = BootMemory()
    try memory.addRAM(start: 0x4000_0000, size: 1 << 30)
    try memory.addRAM(start: 0x7000_0000, size: 1 << 30)  // overlapping: merged, not refused
    #expect(memory.ram.count == 1 && memory.ram[0] == PhysicalRange(start: 0x4000_0000, end: 0xB000_0000))
    #expect(throws: MemInitError(.ramWraps, UInt.max - 0xFFF)) { try memory.addRAM(start: UInt.max - 0xFFF, size: 0x2000) }
    #expect(throws: MemInitError(.ramWraps, UInt.max - 0xFFF)) { try memory.addRAM(start: UInt.max - 0xFFF, size: 0x1000) }  // ends at 2^64
    #expect(throws: MemInitError(.tooManyPages, 1 << 40)) { try memory.addRAM(start: 1 << 40, size: 1 << 44) }  // 2^32 pages
    #expect(throws: MemInitError(.ramMisaligned, 0x123)) { try memory.addRAM(start: 0x123, size: 1 << 20) }
    var full = BootMemory()
    for i in 0..<64 { try full.addRAM(start: UInt(i) << 30, size: 1 << 20) }
    #expect(throws: MemInitError(.tooManyRanges, 64 << 30)) { try full.addRAM(start: 64 << 30, size: 1 << 20) }
    for i in 0..<128 { try full.reserve(start: UInt(i) << 12, end: UInt(i + 1) << 12, as: .firmwareReserved) }
    #expect(throws: MemInitError(.tooManyReservations, 1 << 30)) { try full.reserve(start: 1 << 30, end: (1 << 30) + 1, as: .initrd) }
    #expect(throws: MemInitError(.reservationWraps, 0x5000)) { try full.reserve(start: 0x5000, end: 0x4000, as: .initrd) }

    // The single-range configuration reports the same reasons.
    let span = Span(bytes: 1 << 20)
    func config(base: UInt, size: UInt, heap: Int = 1 << 20) -> MemInitConfig {
      MemInitConfig(ramBase: base, ramSize: size, kernelStart: base, kernelEnd: base, heapBytes: heap,
                    directMapOffset: Int(bitPattern: span.host) - Int(bitPattern: base), zeroFill: hostZeroFill)
    }
    #expect(throws: MemInitError(.ramWraps, UInt.max - 0xFFF)) { try planLayout(config(base: UInt.max - 0xFFF, size: 0x1000)) }
    #expect(throws: MemInitError(.ramWraps, UInt.max - 0x3FFF)) { try planLayout(config(base: UInt.max - 0x3FFF, size: 0x8000)) }
    #expect(throws: MemInitError(.tooManyPages, 0)) { try planLayout(config(base: 0, size: 1 << 44)) }
    #expect(throws: MemInitError(.heapTooSmall, UInt(bitPattern: -5))) { try planLayout(config(base: 0x4000_0000, size: 1 << 30, heap: -5)) }

    // A kernel outside every range; a DTB or firmware reservation over the kernel.
    let ram: [(UInt, UInt)] = [(0, 1 << 20), (4 << 20, 8 << 20)]
    let outsideMachine = try machine(ram: ram)
    var outside = outsideMachine.config
    outside.kernelStart = Self.base + (2 << 20)
    outside.kernelEnd = Self.base + (2 << 20) + 0x1000
    #expect(throws: MemInitError(.kernelOutsideRAM, Self.base + (2 << 20))) { try planLayout(outside) }
    let overKernel = try machine(ram: [(0, 8 << 20)], reserved: [(0x21_0000, 0x100, .deviceTree)])
    #expect(throws: MemInitError(.reservationOverlapsKernel, Self.base + 0x21_0000)) { try planLayout(overKernel.config) }
  }

  @Test("release checks every page; reserve after release is refused")
  func releaseAndLateReserveChecks() throws {
    let span = Span(bytes: 4 << 20)
    let frames = PageFrameAllocator(base: Self.base, pageCount: 512, metadata: span.host + (3 << 20),
                                    directMapOffset: Int(bitPattern: span.host) - Int(bitPattern: Self.base), zeroFill: hostZeroFill)
    frames.reserve(start: Self.base + 0x5_0000, end: Self.base + 0x5_1000, as: .firmwareReserved)  // page 80 of 512
    // A reserved page in the middle of a released range: refused, nothing freed.
    #expect(throws: PageFrameError(.reserved, Self.base + 0x5_0000)) { try frames.release(start: Self.base, end: Self.base + (2 << 20)).get() }
    #expect(frames.freePageCount == 0)
    #expect(try frames.release(start: Self.base, end: Self.base + 0x5_0000).get() == 80)
    // Released twice, or inside a block released before: refused.
    #expect(throws: PageFrameError(.alreadyReleased, Self.base + 0x1000)) { try frames.release(start: Self.base + 0x1000, end: Self.base + 0x3000).get() }
    #expect(try frames.release(start: Self.base + 0x5_1000, end: Self.base + (2 << 20)).get() == 512 - 81)
    // Reserve after release: a free page, a hot-cached page, an allocated page.
    #expect(throws: PageFrameError(.alreadyReleased, Self.base + 0x10_0000)) { try frames.reserve(start: Self.base + 0x10_0000, end: Self.base + 0x10_1000, as: .kernel).get() }
    let page = try #require(frames.allocPage())
    #expect(throws: PageFrameError(.alreadyReleased, frames.physical(of: page))) { try frames.reserve(start: frames.physical(of: page), end: frames.physical(of: page) + 1, as: .kernel).get() }
    try frames.freePage(page)
    #expect(throws: PageFrameError(.alreadyReleased, frames.physical(of: page))) { try frames.reserve(start: frames.physical(of: page), end: frames.physical(of: page) + 1, as: .kernel).get() }
    #expect(throws: PageFrameError(.wrongOwner, Self.base)) { try frames.reserve(start: Self.base, end: Self.base + 1, as: .allocated).get() }
    // Relabelling a reserved page is still fine.
    #expect(try frames.reserve(start: Self.base + 0x5_0000, end: Self.base + 0x5_0001, as: .deviceTree).get() == 1)
    #expect(frames.freePageCount == 511 && frames.checkInvariants() == nil)
  }

  @Test("a DTB above the heap with an unaligned end, and RAM above the mapped limit")
  func dtbHighAndClamp() throws {
    let ram: [(UInt, UInt)] = [(0, 64 << 20)]
    let reserved: [(UInt, UInt, PageOwner)] = [((60 << 20) + 0x123, 0x1_2345, .deviceTree)]
    try expectExactlyFreePages(try machine(ram: ram, reserved: reserved), ram: ram, reserved: reserved)
    let clampedMachine = try machine(ram: [(0, 16 << 20), (32 << 20, 16 << 20)])
    var clamped = clampedMachine.config
    clamped.mappedLimit = Self.base + (40 << 20)
    let layout = try planLayout(clamped)
    let frames = try buildPageFrames(clamped, layout)
    #expect(frames.end == Self.base + (40 << 20))
    #expect(layout.memory.clampedBytes == 8 << 20 && layout.reportedRAMPages == 8192)
    let map = MemoryMap(frames, reportedRAMPages: layout.reportedRAMPages)
    #expect(!map.isExact && map.totalPages + Int(layout.memory.clampedBytes >> 12) == layout.reportedRAMPages)
    withExtendedLifetime(clampedMachine) {}
  }
}
