import FlattenedDeviceTree
import Foundation
import Testing

/// `forEachDeviceRange` against trees built here (each expected range worked out by hand
/// from the `reg` and `ranges` cells the test wrote) and QEMU's virt tree from the DTB
/// corpus (what `dtc -I dtb -O dts` shows in it).
struct DeviceTreeDeviceRangesTests {
  /// One range `forEachDeviceRange` gave: [start, end).
  struct Found: Equatable, CustomStringConvertible {
    var start: UInt64
    var end: UInt64
    init(_ start: UInt64, _ end: UInt64) {
      self.start = start
      self.end = end
    }
    var description: String { "[0x\(String(start, radix: 16)), 0x\(String(end, radix: 16)))" }
  }

  /// The ranges of the tree `blob`, in the order they were given.
  static func ranges(_ blob: [UInt8]) throws(DeviceTreeError) -> [Found] {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(blob.count, 1), alignment: 8)
    defer { copy.deallocate() }
    copy.copyBytes(from: blob)
    let tree = try FlattenedDeviceTree(blob: UnsafeRawBufferPointer(rebasing: copy[0..<blob.count]))
    var found: [Found] = []
    try tree.forEachDeviceRange { start, end in found.append(Found(start, end)) }
    return found
  }

  /// A builder inside a root node with `addressCells` and `sizeCells` (none written when nil).
  static func root(addressCells: UInt32? = 2, sizeCells: UInt32? = 2) -> DeviceTreeBuilder {
    var b = DeviceTreeBuilder()
    b.begin("")
    if let addressCells { b.cells("#address-cells", [addressCells]) }
    if let sizeCells { b.cells("#size-cells", [sizeCells]) }
    return b
  }

  /// A string property's value: its bytes and the NUL.
  static func string(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }

  @Test("DeviceRanges: a uart at the root (2 + 2 cells) is exactly its reg")
  func rootUART() throws {
    var b = Self.root()
    b.begin("uart@9000000")
    b.reg([(0x900_0000, 0x1000)])
    b.end()
    b.end()
    #expect(try Self.ranges(b.build()) == [Found(0x900_0000, 0x900_1000)])
  }

  @Test("DeviceRanges: without #address-cells and #size-cells the root's children take 2 and 1 cells")
  func defaultCells() throws {
    var b = Self.root(addressCells: nil, sizeCells: nil)
    b.begin("uart@9000000")
    b.reg([(0x900_0000, 0x1000), (0x1_0000_0000, 0x20)], addressCells: 2, sizeCells: 1)
    b.end()
    b.end()
    #expect(try Self.ranges(b.build()) == [Found(0x900_0000, 0x900_1000), Found(0x1_0000_0000, 0x1_0000_0020)])
  }

  /// A Pi-like /soc: 1 + 1 cells, the bus window 0x7e000000 at 0x3f000000 (16 MiB) and
  /// a second window 0x40000000 at 0x40000000 (4 KiB), then `children`.
  static func soc(_ children: (inout DeviceTreeBuilder) -> Void) -> [UInt8] {
    var b = root()
    b.begin("soc")
    b.property("compatible", string("simple-bus"))
    b.cells("#address-cells", [1])
    b.cells("#size-cells", [1])
    b.cells("ranges", [0x7E00_0000, 0x0, 0x3F00_0000, 0x100_0000, 0x4000_0000, 0x0, 0x4000_0000, 0x1000])
    children(&b)
    b.end()
    b.end()
    return b.build()
  }

  @Test("DeviceRanges: a simple-bus translates its children through ranges; outside every window is skipped")
  func simpleBus() throws {
    let blob = Self.soc { b in
      b.begin("serial@7e201000")
      b.reg([(0x7E20_1000, 0x200)], addressCells: 1, sizeCells: 1)
      b.end()
      b.begin("outside@80000000")
      b.reg([(0x8000_0000, 0x100)], addressCells: 1, sizeCells: 1)
      b.end()
      b.begin("below@7dfff000")  // just below the window
      b.reg([(0x7DFF_F000, 0x100)], addressCells: 1, sizeCells: 1)
      b.end()
      b.begin("past@7f000000")  // the window's end (exclusive)
      b.reg([(0x7F00_0000, 0x100)], addressCells: 1, sizeCells: 1)
      b.end()
      b.begin("local-intc@40000000")  // the second window
      b.reg([(0x4000_0000, 0x100)], addressCells: 1, sizeCells: 1)
      b.end()
      b.begin("last@7efff000")  // the window's last page
      b.reg([(0x7EFF_F000, 0x1000)], addressCells: 1, sizeCells: 1)
      b.end()
    }
    #expect(try Self.ranges(blob) == [Found(0x3F20_1000, 0x3F20_1200), Found(0x4000_0000, 0x4000_0100), Found(0x3FFF_F000, 0x4000_0000)])
  }

  @Test("DeviceRanges: a bus without ranges hides its children, not its own reg; an empty ranges is the identity")
  func busWithoutRanges() throws {
    var b = Self.root()
    b.begin("i2c@9100000")  // no ranges: its children are not memory mapped
    b.reg([(0x910_0000, 0x1000)])
    b.cells("#address-cells", [1])
    b.cells("#size-cells", [1])
    b.begin("eeprom@50")
    b.reg([(0x50, 0x10)], addressCells: 1, sizeCells: 1)
    b.end()
    b.end()
    b.begin("intc@8000000")  // empty ranges: identity
    b.reg([(0x800_0000, 0x1_0000), (0x801_0000, 0x1_0000)])
    b.cells("#address-cells", [2])
    b.cells("#size-cells", [2])
    b.property("ranges", [])
    b.begin("v2m@8020000")
    b.reg([(0x802_0000, 0x1000)])
    b.end()
    b.end()
    b.end()
    #expect(try Self.ranges(b.build()) == [Found(0x910_0000, 0x910_1000), Found(0x800_0000, 0x801_0000),
      Found(0x801_0000, 0x802_0000), Found(0x802_0000, 0x802_1000)])
  }

  @Test("DeviceRanges: memory, /reserved-memory, /cpus, /chosen, /aliases and unavailable nodes (with their subtrees) are skipped")
  func skippedNodes() throws {
    var b = Self.root()
    b.begin("memory@40000000")
    b.property("device_type", Self.string("memory"))
    b.reg([(0x4000_0000, 1 << 30)])
    b.end()
    b.begin("memory")  // named memory at the root: RAM for MemInit too
    b.reg([(0x1_0000_0000, 1 << 30)])
    b.end()
    b.begin("sram@10000000")  // device_type memory under another name
    b.reg([(0x1000_0000, 0x1000)])
    b.property("device_type", Self.string("memory"))
    b.end()
    b.begin("reserved-memory")
    b.cells("#address-cells", [2])
    b.cells("#size-cells", [2])
    b.property("ranges", [])
    b.reg([(0x4800_0000, 0x1000)])
    b.begin("carveout@48000000")
    b.reg([(0x4800_0000, 0x10_0000)])
    b.end()
    b.end()
    b.begin("cpus")
    b.cells("#address-cells", [1])
    b.cells("#size-cells", [0])
    b.begin("cpu@0")
    b.cells("reg", [0])
    b.end()
    b.end()
    b.begin("chosen")
    b.reg([(0x4400_0000, 0x1000)])
    b.end()
    b.begin("aliases")
    b.reg([(0x4500_0000, 0x1000)])
    b.end()
    b.begin("uart@9000000")  // reg before status: still skipped
    b.reg([(0x900_0000, 0x1000)])
    b.property("status", Self.string("disabled"))
    b.end()
    b.begin("rtc@9010000")
    b.property("status", Self.string("okay"))
    b.reg([(0x901_0000, 0x1000)])
    b.end()
    b.begin("gpio@9030000")
    b.property("status", Self.string("ok"))
    b.reg([(0x903_0000, 0x1000)])
    b.end()
    b.begin("secure@9040000")
    b.property("status", Self.string("okayish"))
    b.reg([(0x904_0000, 0x1000)])
    b.end()
    b.begin("bus@a000000")  // a disabled bus: its children are skipped too
    b.property("status", Self.string("disabled"))
    b.cells("#address-cells", [2])
    b.cells("#size-cells", [2])
    b.property("ranges", [])
    b.begin("child@a000000")
    b.reg([(0xA00_0000, 0x1000)])
    b.end()
    b.end()
    b.begin("dev@b000000")  // size 0 and an end past 2^64 skipped, its other entries given
    b.reg([(0xB00_0000, 0), (0xB00_1000, 0x100), (UInt64.max - 0xFF, 0x100), (UInt64.max - 0xFF, 0xFF)])
    b.end()
    b.end()
    #expect(try Self.ranges(b.build()) == [Found(0x901_0000, 0x901_1000), Found(0x903_0000, 0x903_1000),
      Found(0xB00_1000, 0xB00_1100), Found(UInt64.max - 0xFF, UInt64.max)])
  }

  @Test("DeviceRanges: a bus inside a bus translates twice; a sub-bus without ranges hides its children")
  func twoLevels() throws {
    var b = Self.root()
    b.begin("soc")
    b.cells("#address-cells", [1])
    b.cells("#size-cells", [1])
    b.cells("ranges", [0x0, 0x0, 0x1000_0000, 0x100_0000])  // soc 0 at CPU 0x10000000
    b.begin("sub@100000")
    b.cells("#address-cells", [1])
    b.cells("#size-cells", [1])
    b.cells("ranges", [0x0, 0x10_0000, 0x1_0000])  // sub 0 at soc 0x100000
    b.reg([(0x10_0000, 0x100)], addressCells: 1, sizeCells: 1)
    b.begin("dev@2000")
    b.reg([(0x2000, 0x100)], addressCells: 1, sizeCells: 1)
    b.end()
    b.begin("far@20000")  // inside soc's window, outside sub's
    b.reg([(0x2_0000, 0x100)], addressCells: 1, sizeCells: 1)
    b.end()
    b.end()
    b.begin("identity@200000")
    b.cells("#address-cells", [1])
    b.cells("#size-cells", [1])
    b.property("ranges", [])
    b.begin("dev@200000")
    b.reg([(0x20_0000, 0x40)], addressCells: 1, sizeCells: 1)
    b.end()
    b.end()
    b.begin("closed@300000")
    b.cells("#address-cells", [1])
    b.cells("#size-cells", [1])
    b.begin("dev@300000")
    b.reg([(0x30_0000, 0x40)], addressCells: 1, sizeCells: 1)
    b.end()
    b.end()
    b.end()
    b.end()
    #expect(try Self.ranges(b.build()) == [Found(0x1010_0000, 0x1010_0100), Found(0x1010_2000, 0x1010_2100),
      Found(0x1020_0000, 0x1020_0040)])
  }

  @Test("DeviceRanges: children of a bus with 3 address cells (PCI) or size cells above 2 are skipped, the bus's own reg is not")
  func unsupportedCells() throws {
    var b = Self.root()
    b.begin("pcie@10000000")
    b.reg([(0x40_1000_0000, 0x1000_0000)])
    b.cells("#address-cells", [3])
    b.cells("#size-cells", [2])
    b.cells("ranges", [0x200_0000, 0, 0x1000_0000, 0, 0x1000_0000, 0, 0x2EFF_0000])
    b.begin("dev@0")
    b.cells("reg", [0, 0, 0, 0, 0x1000])
    b.end()
    b.end()
    b.begin("odd@20000000")
    b.cells("#address-cells", [1])
    b.cells("#size-cells", [3])
    b.property("ranges", [])
    b.begin("dev@20000000")
    b.cells("reg", [0x2000_0000, 0, 0, 0x1000])
    b.end()
    b.end()
    b.end()
    #expect(try Self.ranges(b.build()) == [Found(0x40_1000_0000, 0x40_2000_0000)])
  }

  @Test("DeviceRanges: nodes below level 16 are skipped")
  func depthLimit() throws {
    var b = Self.root()
    for level in 2...20 {
      b.begin("bus@\(level)")
      b.reg([(UInt64(level) << 12, 0x10)])
      b.cells("#address-cells", [2])
      b.cells("#size-cells", [2])
      b.property("ranges", [])
    }
    for _ in 1...20 { b.end() }
    #expect(try Self.ranges(b.build()) == (2...16).map { Found(UInt64($0) << 12, (UInt64($0) << 12) + 0x10) })
  }

  @Test("DeviceRanges: truncated and malformed trees throw a DeviceTreeError before any range")
  func malformed() throws {
    let good = Self.soc { b in
      b.begin("serial@7e201000")
      b.reg([(0x7E20_1000, 0x200)], addressCells: 1, sizeCells: 1)
      b.end()
    }
    #expect(try Self.ranges(good) == [Found(0x3F20_1000, 0x3F20_1200)])
    // Every shorter structure block (header field 9) leaves the walk short of FDT_END.
    let structSize = Int(UInt32(good[36]) << 24 | UInt32(good[37]) << 16 | UInt32(good[38]) << 8 | UInt32(good[39]))
    for size in 0..<structSize {
      var cut = good
      cut[36] = UInt8(size >> 24); cut[37] = UInt8(size >> 16 & 0xFF); cut[38] = UInt8(size >> 8 & 0xFF); cut[39] = UInt8(size & 0xFF)
      #expect(throws: DeviceTreeError.self) { try Self.ranges(cut) }
    }
    // Every truncated blob is refused (at the header, since totalsize no longer fits).
    for length in 0..<good.count {
      #expect(throws: DeviceTreeError.self) { try Self.ranges(Array(good[0..<length])) }
    }
    // An unknown token after a range-giving node: no range handed out before the error.
    var b = Self.root()
    b.begin("uart@9000000")
    b.reg([(0x900_0000, 0x1000)])
    b.end()
    b.rawWord(0x77)
    b.end()
    let blob = b.build()
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: blob.count, alignment: 8)
    defer { copy.deallocate() }
    copy.copyBytes(from: blob)
    let tree = try FlattenedDeviceTree(blob: UnsafeRawBufferPointer(copy))
    var calls = 0
    #expect(throws: DeviceTreeError.badStructure) { try tree.forEachDeviceRange { _, _ in calls += 1 } }
    #expect(calls == 0)
    // An end-node too many, a property outside the root.
    var extraEnd = Self.root()
    extraEnd.end()
    extraEnd.end()
    #expect(throws: DeviceTreeError.badStructure) { try Self.ranges(extraEnd.build()) }
    var outside = DeviceTreeBuilder()
    outside.cells("reg", [0, 0x900_0000, 0, 0x1000])
    #expect(throws: DeviceTreeError.badStructure) { try Self.ranges(outside.build()) }
    // Garbage bytes behind a valid header: refused with a typed error or read cleanly, never a trap.
    var generator = SystemRandomNumberGenerator()
    for _ in 0..<200 {
      var noisy = good
      for _ in 0..<8 { noisy[48 + Int.random(in: 0..<(noisy.count - 48), using: &generator)] = UInt8.random(in: 0...255, using: &generator) }
      _ = try? Self.ranges(noisy)
    }
  }

  @Test("DeviceRanges: QEMU's virt tree (Fuzz/dtb-corpus/virt.dtb) gives its devices, no RAM")
  func qemuVirt() throws {
    let data = try Data(contentsOf: DeviceTreeCorpusTests.corpus.appendingPathComponent("virt.dtb"))
    let found = try Self.ranges([UInt8](data))
    let virtio = (0..<32).map { Found(0xA00_0000 + UInt64($0) * 0x200, 0xA00_0200 + UInt64($0) * 0x200) }
    let others = [
      Found(0x902_0000, 0x902_0018),  // fw-cfg
      Found(0x903_0000, 0x903_1000),  // pl061
      Found(0x40_1000_0000, 0x40_2000_0000),  // pcie ECAM
      Found(0x901_0000, 0x901_1000),  // pl031
      Found(0x900_0000, 0x900_1000),  // pl011
      Found(0x800_0000, 0x801_0000), Found(0x801_0000, 0x802_0000),  // GIC distributor, CPU interface
      Found(0x802_0000, 0x802_1000),  // v2m, through intc's empty ranges
      Found(0x0, 0x400_0000), Found(0x400_0000, 0x800_0000),  // flash banks
    ]
    #expect(found.count == virtio.count + others.count)
    for range in virtio + others { #expect(found.contains(range), "\(range) missing") }
    #expect(!found.contains { $0.end > 0x4000_0000 && $0.start < 0x8000_0000 }, "RAM given as a device range")
  }
}
