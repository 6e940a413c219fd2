import TranslationFormats
import PageFrames
import Testing
import VirtualMemory

/// The entries each format writes, read raw from the tables and held against the bit
/// positions of the architecture's specification, written out here; and what Sv39's
/// smaller address space refuses.
@Suite struct TranslationFormatTests {
  static let gib: UInt = 1 << 30
  static let twoMiB: UInt = 2 << 20
  static let page: UInt = 4096

  /// The raw entry at `level` on the walk to `va`, following table entries as the
  /// specification gives their next-table address (ARMv8-A: bits 47:12 in place;
  /// Sv39: PPN, bits 53:10, times 4096); nil when the walk meets no table above it.
  func entry(_ fixture: VMFixture, _ space: AddressSpace, _ va: UInt, level: Int) -> UInt64? {
    var table = space.root
    var current = fixture.format.firstLevel
    while true {
      let index = (va >> UInt(39 - 9 * current)) & 511
      let bits = fixture.frames.pointer(toPhysical: table + index * 8).load(as: UInt64.self)
      if current == level { return bits }
      switch fixture.tested {
      case .armv8Stage1:
        guard bits & 3 == 3 else { return nil }
        table = UInt(bits & 0x0000_ffff_ffff_f000)
      case .sv39:
        guard bits & 0xf == 1 else { return nil }
        table = UInt((bits >> 10) & ((1 << 44) - 1)) << 12
      }
      current += 1
    }
  }

  // MARK: Sv39 (RISC-V privileged specification: PTE bits V 0, R 1, W 2, X 3, U 4,
  // G 5, A 6, D 7, PPN 53:10)

  static let v: UInt64 = 1 << 0
  static let r: UInt64 = 1 << 1
  static let w: UInt64 = 1 << 2
  static let x: UInt64 = 1 << 3
  static let u: UInt64 = 1 << 4
  static let g: UInt64 = 1 << 5
  static let a: UInt64 = 1 << 6
  static let d: UInt64 = 1 << 7

  /// PPN field of a PTE for `physical`: the page number at bit 10.
  static func ppn(_ physical: UInt) -> UInt64 { UInt64(physical >> 12) << 10 }

  @Test("Sv39: a 1 GiB, a 2 MiB and a 4 KiB mapping are the PTEs the privileged spec gives; tables are V alone")
  func sv39Entries() throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: .sv39)
    let space = try fixture.space()
    let (gib, twoMiB, page) = (Self.gib, Self.twoMiB, Self.page)
    let (v, r, w, x, u, g, a, d) = (Self.v, Self.r, Self.w, Self.x, Self.u, Self.g, Self.a, Self.d)
    #expect(space.root & 0xfff == 0)

    // A gigapage in the root table (VPN[2] = 3).
    try space.map(3 * gib, 5 * gib, pages: 1 << 18, .kernelData)
    #expect(entry(fixture, space, 3 * gib, level: 1) == Self.ppn(5 * gib) | v | r | w | g | a | d)
    // A megapage: the root entry for 8 GiB points at a level-2 table (V only), whose
    // entry 1 is the leaf.
    try space.map(8 * gib + twoMiB, 9 * gib + 2 * twoMiB, pages: 512, [.read, .user])
    let pointer = try #require(entry(fixture, space, 8 * gib, level: 1))
    #expect(pointer & 0x3ff == v, "a non-leaf PTE: V, and R, W, X, U, A, D clear")
    #expect(fixture.frames.owner(ofPhysical: UInt((pointer >> 10) & ((1 << 44) - 1)) << 12) == .pageTable)
    #expect(entry(fixture, space, 8 * gib + twoMiB, level: 2) == Self.ppn(9 * gib + 2 * twoMiB) | v | r | u | a | d)
    // Pages: kernel text, user code, kernel MMIO (no memory-type bits in Sv39 without
    // Svpbmt), and a physical address above 2^48 (PPN up to bit 53).
    try space.map(10 * gib + page, 0x8020_3000, pages: 1, .kernelText)
    try space.map(10 * gib + 2 * page, 0x8030_0000, pages: 1, [.read, .execute, .user])
    try space.map(10 * gib + 3 * page, 0x1000_0000, pages: 1, .kernelDevice)
    let high: UInt = (1 << 55) + (7 << 12)
    try space.map(10 * gib + 4 * page, high, pages: 1, .kernelReadOnly)
    #expect(entry(fixture, space, 10 * gib + page, level: 3) == Self.ppn(0x8020_3000) | v | r | x | g | a | d)
    #expect(entry(fixture, space, 10 * gib + 2 * page, level: 3) == Self.ppn(0x8030_0000) | v | r | x | u | a | d)
    #expect(entry(fixture, space, 10 * gib + 3 * page, level: 3) == Self.ppn(0x1000_0000) | v | r | w | g | a | d)
    let highEntry = try #require(entry(fixture, space, 10 * gib + 4 * page, level: 3))
    #expect(highEntry == Self.ppn(high) | v | r | g | a | d && highEntry >> 53 == 1 && highEntry >> 54 == 0)
    #expect(space.translate(10 * gib + 4 * page + 0x123)?.physical == high + 0x123)
    #expect(space.translate(10 * gib + 3 * page)?.attributes == [.read, .write, .global], "no .device to read back")
    #expect(space.translate(10 * gib + 2 * page)?.attributes == [.read, .execute, .user])
    #expect(space.checkInvariants() == nil)
    space.destroy()
  }

  @Test("Sv39: W+X, write without read and executable device are refused; nothing is written")
  func sv39WriteXorExecute() throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: .sv39)
    let space = try fixture.space()
    let va = 4 * Self.gib
    try space.map(va, 0x8000_0000, pages: 2, .kernelData)
    for attributes: MapAttributes in [[.read, .write, .execute], [.read, .write, .execute, .user], [.write], [.read, .device, .execute]] {
      expectRefused(.badAttributes, "map with \(attributes.rawValue)") { () throws(VirtualMemoryError) in
        try space.map(va + 2 * Self.page, 0x8000_2000, pages: 1, attributes)
      }
      expectRefused(.badAttributes, "protect with \(attributes.rawValue)") { () throws(VirtualMemoryError) in
        try space.protect(va, pages: 2, attributes)
      }
    }
    #expect(entry(fixture, space, va + 2 * Self.page, level: 3) == 0)
    for offset: UInt in [0, Self.page] {
      let bits = try #require(entry(fixture, space, va + offset, level: 3))
      #expect(bits & Self.w != 0 && bits & Self.x == 0)
    }
    space.destroy()
  }

  @Test("Sv39: addresses at or past 2^38 (the upper half too) are outOfRange for map, unmap, protect and the vmalloc range; the last page below maps")
  func sv39AddressLimit() throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: .sv39)
    let space = try fixture.space()
    let limit: UInt = 1 << 38
    #expect(fixture.format.addressLimit == limit)
    let upperHalf: UInt = 0xffff_ffc0_0000_0000
    func refused(_ what: Comment, _ body: () throws(VirtualMemoryError) -> Void) { expectRefused(.outOfRange, what, body) }
    refused("map at 2^38") { () throws(VirtualMemoryError) in try space.map(limit, 0x8000_0000, pages: 1, .kernelData) }
    refused("map of 2 pages from 2^38 - 4 KiB") { () throws(VirtualMemoryError) in try space.map(limit - Self.page, 0x8000_0000, pages: 2, .kernelData) }
    refused("map of 1 GiB at 2^38") { () throws(VirtualMemoryError) in try space.map(limit, 0, pages: 1 << 18, .kernelData) }
    refused("map in the upper half") { () throws(VirtualMemoryError) in try space.map(upperHalf, 0x8000_0000, pages: 1, .kernelData) }
    refused("map to physical 2^56") { () throws(VirtualMemoryError) in try space.map(Self.gib, 1 << 56, pages: 1, .kernelData) }
    refused("unmap at 2^38") { () throws(VirtualMemoryError) in _ = try space.unmap(limit, pages: 1) }
    refused("protect across 2^38") { () throws(VirtualMemoryError) in try space.protect(limit - Self.page, pages: 2, .kernelData) }
    refused("vmalloc range past 2^38") { () throws(VirtualMemoryError) in try space.setVmallocRange(base: limit - Self.gib, limit: limit + Self.gib) }
    #expect(space.translate(limit) == nil && space.translate(upperHalf) == nil)
    #expect(space.statistics.tablePages == 1 && space.statistics.mappedBytes == 0)

    // The last page below the limit (root entry 255) and a gigapage below that (254).
    try space.map(limit - Self.page, 0x8000_0000, pages: 1, .kernelData)
    try space.map(limit - 2 * Self.gib, 3 * Self.gib, pages: 1 << 18, .kernelReadOnly)
    #expect(entry(fixture, space, limit - 2 * Self.gib, level: 1) == Self.ppn(3 * Self.gib) | Self.v | Self.r | Self.g | Self.a | Self.d)
    #expect(space.translate(limit - 1)?.physical == 0x8000_0fff)
    #expect(space.translate(limit - Self.gib - 1)?.bytes == Self.gib)
    #expect(space.checkInvariants() == nil)
    space.destroy()
  }

  @Test("Sv39: protect of one page in a 1 GiB gigapage splits it twice (break-before-make); the PTEs keep the rest as it was")
  func sv39ProtectSplits() throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: .sv39)
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let (gib, twoMiB, page) = (Self.gib, Self.twoMiB, Self.page)
    let (v, r, w, g, a, d) = (Self.v, Self.r, Self.w, Self.g, Self.a, Self.d)
    let va = 4 * gib, pa = 6 * gib
    try space.map(va, pa, pages: 1 << 18, .kernelData)
    let target = va + twoMiB + (1 << 20) + 5 * page
    let before = space.statistics
    try space.protect(target, pages: 1, .kernelReadOnly)
    #expect(space.statistics.blockSplits == before.blockSplits + 2)
    #expect(space.statistics.mappedBytes == gib)
    #expect(try #require(entry(fixture, space, va, level: 1)) & 0x3ff == v, "the gigapage became a table")
    #expect(entry(fixture, space, va, level: 2) == Self.ppn(pa) | v | r | w | g | a | d, "the first megapage as it was")
    #expect(try #require(entry(fixture, space, va + twoMiB, level: 2)) & 0x3ff == v)
    #expect(entry(fixture, space, target, level: 3) == Self.ppn(pa + (target - va)) | v | r | g | a | d)
    for neighbour in [target - page, target + page, va + twoMiB, va + 2 * twoMiB - page] {
      #expect(entry(fixture, space, neighbour, level: 3) == Self.ppn(pa + (neighbour - va)) | v | r | w | g | a | d)
    }
    #expect(entry(fixture, space, va + 2 * twoMiB, level: 2) == Self.ppn(pa + 2 * twoMiB) | v | r | w | g | a | d)
    if case .success(let leaf) = walker.walk(target) {
      #expect(leaf.level == 3 && !leaf.kernelWritable && leaf.physical == pa + (target - va))
    } else {
      Issue.record("the walker found no leaf at the protected page")
    }
    // Back to writable and unmapped around it: the split tables stay consistent.
    try space.protect(target, pages: 1, .kernelData)
    #expect(entry(fixture, space, target, level: 3) == Self.ppn(pa + (target - va)) | v | r | w | g | a | d)
    #expect(try space.unmap(va + twoMiB, pages: 512) == twoMiB)
    #expect(entry(fixture, space, va + twoMiB, level: 2) == 0)
    #expect(space.checkInvariants() == nil)
    space.destroy()
  }

  // MARK: ARMv8-A (Arm ARM D8.3: bits 1:0 kind, AttrIndx 4:2, AP 7:6, SH 9:8, AF 10,
  // nG 11, address 47:12, PXN 53, UXN 54)

  @Test("ARMv8-A: pages, blocks and tables are the descriptors the Arm ARM gives")
  func armv8Entries() throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: .armv8Stage1)
    let space = try fixture.space()
    let (gib, twoMiB, page) = (Self.gib, Self.twoMiB, Self.page)
    let pxn: UInt64 = 1 << 53, uxn: UInt64 = 1 << 54
    try space.map(gib, 0x4000_0000, pages: 1 << 18, .kernelText)
    try space.map(2 * gib + twoMiB, 0x0800_0000 + twoMiB, pages: 512, .kernelDevice)
    try space.map(3 * gib + page, 0x4000_1000, pages: 1, .kernelData)
    try space.map(3 * gib + 2 * page, 0x4000_2000, pages: 1, [.read, .execute, .user])
    // 1 GiB block, Normal (AttrIndx 0), inner shareable, AF, read-only, UXN.
    #expect(entry(fixture, space, gib, level: 1) == 0x4000_0000 | 0x1 | 0x300 | 0x400 | 0x80 | uxn)
    // 2 MiB block, Device (AttrIndx 1), not shareable, AF, read-write, PXN and UXN.
    #expect(entry(fixture, space, 2 * gib + twoMiB, level: 2) == 0x0800_0000 + 0x20_0000 | 0x1 | 0x4 | 0x400 | pxn | uxn)
    // Pages: bits 1:0 = 11.
    #expect(entry(fixture, space, 3 * gib + page, level: 3) == 0x4000_1000 | 0x3 | 0x300 | 0x400 | pxn | uxn)
    #expect(entry(fixture, space, 3 * gib + 2 * page, level: 3) == 0x4000_2000 | 0x3 | 0x300 | 0x400 | 0x40 | 0x80 | 0x800 | pxn)
    // Tables: bits 1:0 = 11 and the next table's address.
    let table = try #require(entry(fixture, space, 3 * gib, level: 0))
    #expect(table & 0xffff_0000_0000_0fff == 3)
    #expect(fixture.frames.owner(ofPhysical: UInt(table & 0x0000_ffff_ffff_f000)) == .pageTable)
    space.destroy()
  }

  @Test("each format's vmalloc window lies inside its address limit, with room above it; the formats' limits")
  func windows() {
    for tested in TestedFormat.allCases {
      let format = tested.format
      #expect(format.vmallocWindow.lowerBound & (Self.gib - 1) == 0 && !format.vmallocWindow.isEmpty, "\(tested)")
      #expect(format.vmallocWindow.upperBound + Self.gib <= format.addressLimit, "\(tested)")
    }
    #expect(TranslationFormat.armv8Stage1.vmallocWindow == (1 << 46)..<((1 << 46) + (1 << 40)))
    #expect(TranslationFormat.sv39.vmallocWindow == (128 << 30)..<(192 << 30))
    #expect(TranslationFormat.armv8Stage1.addressLimit == 1 << 48 && TranslationFormat.armv8Stage1.firstLevel == 0)
    #expect(TranslationFormat.sv39.addressLimit == 1 << 38 && TranslationFormat.sv39.firstLevel == 1)
  }
}
