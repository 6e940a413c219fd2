import Foundation
import MemInit
import PageFrames
import Testing

/// The device tree reader against trees built in the test: every memory node and reg
/// entry, cells, /memreserve/, /reserved-memory with and without no-map, the initrd,
/// and bad blobs refused without reading outside them.
struct DeviceTreeTests {
  /// A virt-like tree: 2 address cells, 2 size cells.
  func tree(memory: [[(UInt64, UInt64)]], addressCells: UInt32 = 2, sizeCells: UInt32 = 2,
            reserved: [(String, (UInt64, UInt64), Bool)] = [], initrd: (UInt64, UInt64)? = nil,
            memreserve: [(UInt64, UInt64)] = []) -> [UInt8] {
    var b = DeviceTreeBuilder()
    b.reserveMap = memreserve
    b.begin("")
    b.cells("#address-cells", [addressCells])
    b.cells("#size-cells", [sizeCells])
    for (index, regs) in memory.enumerated() {
      b.begin(index == 0 ? "memory@40000000" : "memory@\(index)")
      b.property("device_type", Array("memory".utf8) + [0])
      b.reg(regs, addressCells: Int(addressCells), sizeCells: Int(sizeCells))
      b.end()
    }
    if !reserved.isEmpty {
      b.begin("reserved-memory")
      b.cells("#address-cells", [2])
      b.cells("#size-cells", [2])
      b.property("ranges", [])
      for (name, range, noMap) in reserved {
        b.begin(name)
        b.reg([range])
        if noMap { b.property("no-map", []) }
        b.end()
      }
      b.end()
    }
    b.begin("chosen")
    if let (start, end) = initrd {
      b.cells("linux,initrd-start", [UInt32(start >> 32), UInt32(truncatingIfNeeded: start)])
      b.cells("linux,initrd-end", [UInt32(truncatingIfNeeded: end)])  // 32-bit form
    }
    b.end()
    b.end()
    return b.build()
  }

  func read(_ blob: [UInt8], at address: UInt = 0x4000_0000) throws(MemInitError) -> (BootMemory, DeviceTree.Summary) {
    var memory = BootMemory()
    var result: Result<DeviceTree.Summary, MemInitError> = .failure(MemInitError(.deviceTreeTruncated, 0))
    blob.withUnsafeBytes { bytes in
      do throws(MemInitError) {
        let tree = try DeviceTree(blob: bytes, physicalAddress: address)
        result = .success(try tree.describe(into: &memory))
      } catch {
        result = .failure(error)
      }
    }
    return (memory, try result.get())
  }

  @Test("every /memory node and every reg entry, two NUMA nodes, one and two cells")
  func memoryNodes() throws {
    let (memory, summary) = try read(tree(memory: [[(0x4000_0000, 1 << 30)], [(0x8000_0000, 1 << 30), (0x1_0000_0000, 0x1000_0000)]]))
    // Three reg entries; the first two side by side are one stretch of RAM.
    #expect(summary.ramRanges == 3 && memory.ram.count == 2)
    #expect(memory.ram[0] == PhysicalRange(start: 0x4000_0000, end: 0xC000_0000))
    #expect(memory.ram[1] == PhysicalRange(start: 0x1_0000_0000, end: 0x1_1000_0000))
    let (narrow, _) = try read(tree(memory: [[(0, 0x3C00_0000)], [(0x4000_0000, 0x4000_0000)]], addressCells: 1, sizeCells: 1))
    #expect(narrow.ram.count == 2 && narrow.ram[1] == PhysicalRange(start: 0x4000_0000, end: 0x8000_0000))
    // Unaligned RAM is rounded inwards to whole pages.
    let (rounded, _) = try read(tree(memory: [[(0x4000_0123, 0x10_0000)]]))
    #expect(rounded.ram[0] == PhysicalRange(start: 0x4000_1000, end: 0x4010_0000))
  }

  @Test("the blob, /memreserve/, /reserved-memory (no-map recorded) and the initrd are reserved")
  func reservations() throws {
    let blob = tree(memory: [[(0x4000_0000, 1 << 30)]],
                    reserved: [("secmon@4e000000", (0x4E00_0000, 0x20_0000), true), ("shm@4f000000", (0x4F00_0000, 0x1000), false)],
                    initrd: (0x4800_0000, 0x4812_3457), memreserve: [(0x4100_0000, 0x1234)])
    let (memory, summary) = try read(blob, at: 0x7FF0_0008)
    #expect(summary.memoryReservations == 1 && summary.noMap == 1 && summary.reservedMemory == 1 && summary.initrd)
    var found: [PageOwner: [PhysicalRange]] = [:]
    for i in 0..<memory.reservationCount { found[memory.reservation(i).owner, default: []].append(memory.reservation(i).range) }
    #expect(found[.deviceTree] == [PhysicalRange(start: 0x7FF0_0008, end: 0x7FF0_0008 + UInt(blob.count))])
    #expect(found[.firmwareReserved] == [PhysicalRange(start: 0x4100_0000, end: 0x4100_1234), PhysicalRange(start: 0x4F00_0000, end: 0x4F00_1000)])
    #expect(found[.noMap] == [PhysicalRange(start: 0x4E00_0000, end: 0x4E20_0000)])
    #expect(found[.initrd] == [PhysicalRange(start: 0x4800_0000, end: 0x4812_3457)])
  }

  @Test("bad blobs: magic, version, truncation at every length, cells out of range")
  func badBlobs() throws {
    let good = tree(memory: [[(0x4000_0000, 1 << 30)]], reserved: [("a", (0x5000_0000, 0x1000), false)], initrd: (0x4800_0000, 0x4800_1000))
    var bad = good
    bad[0] = 0
    #expect(throws: MemInitError(.deviceTreeBadMagic, 0x4000_0000)) { try read(bad) }
    bad = good
    bad[23] = 15  // version 15
    #expect(throws: MemInitError(.deviceTreeBadVersion, 0x4000_0000)) { try read(bad) }
    // Every prefix of the blob is refused (its header says it is longer).
    for length in 0..<good.count {
      #expect(throws: MemInitError.self) { try read(Array(good[0..<length])) }
    }
    // Cells above 2, and zero size cells for a reg.
    #expect(throws: MemInitError(.deviceTreeBadCells, 3)) { try read(tree(memory: [[(0x4000_0000, 1 << 30)]], addressCells: 3)) }
    #expect(throws: MemInitError(.deviceTreeBadCells, 0)) { try read(tree(memory: [[(0x4000_0000, 1 << 30)]], sizeCells: 0)) }
    // Overlapping memory nodes are merged: RAM described twice is RAM once.
    let (overlapping, _) = try read(tree(memory: [[(0x4000_0000, 1 << 30)], [(0x7000_0000, 1 << 30)]]))
    #expect(overlapping.ram.count == 1 && overlapping.ram[0] == PhysicalRange(start: 0x4000_0000, end: 0xB000_0000))
    // A property whose length runs past the structure block.
    var b = DeviceTreeBuilder()
    b.begin("")
    b.cells("#size-cells", [2])
    b.end()
    var blob = b.build()
    let lengthOffset = 40 + 8 + 16 + 8 + 4  // header, padding, reserve map, begin-node + name, property token
    blob[lengthOffset] = 0x7F
    #expect(throws: MemInitError(.deviceTreeTruncated, 0x4000_0000)) { try read(blob) }
  }

  @Test("memInit over a tree: exact free pages around every reservation")
  func memInitOverTree() throws {
    let blob = tree(memory: [[(0x4000_0000, 32 << 20)], [(0x4400_0000, 16 << 20)]],
                    reserved: [("nomap", (0x4080_0000, 0x10_0000), true)], initrd: (0x4100_0000, 0x4100_5001),
                    memreserve: [(0x4400_1000, 0x2000)])
    let (memory, _) = try read(blob, at: 0x41F0_0000)
    let span = BootMemoryTests.Span(bytes: 80 << 20, ram: [(0, 32 << 20), (64 << 20, 16 << 20)])
    let config = MemInitConfig(memory: memory, kernelStart: 0x4020_0000, kernelEnd: 0x4022_0000,
                               directMapOffset: Int(bitPattern: span.host) - 0x4000_0000, zeroFill: hostZeroFill)
    let layout = try planLayout(config)
    let frames = try buildPageFrames(config, layout)
    #expect(frames.owner(ofPhysical: 0x4080_0000) == .noMap && frames.owner(ofPhysical: 0x4100_5000) == .initrd)
    #expect(frames.owner(ofPhysical: 0x4400_2000) == .firmwareReserved && frames.owner(ofPhysical: 0x41F0_0000) == .deviceTree)
    var free = 0
    var misplaced = 0
    while let page = frames.allocPages(order: 0, zeroed: false) {
      let p = frames.physical(of: page)
      for i in 0..<layout.memory.reservationCount where layout.memory.reservation(i).range.overlaps(PhysicalRange(start: p, end: p + 4096)) {
        misplaced += 1
      }
      free += 1
    }
    #expect(misplaced == 0 && free == frames.count(.allocated))
    #expect(MemoryMap(frames, reportedRAMPages: layout.reportedRAMPages).isExact)
    withExtendedLifetime(span) {}
  }
}

/// The device tree fuzzer's seed corpus (QEMU's own trees and the test trees), read by
/// the same reader: each must parse and describe RAM.
struct DeviceTreeCorpusTests {
  static let corpus = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fuzz/dtb-corpus")

  static var inputs: [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: corpus.path)) ?? []).sorted()
  }

  @Test("every tree in the DTB corpus parses and describes RAM", arguments: inputs)
  func replay(_ name: String) throws {
    let data = try Data(contentsOf: Self.corpus.appendingPathComponent(name))
    let (memory, _) = try DeviceTreeTests().read([UInt8](data))
    #expect(memory.ram.count >= 1)
  }

  @Test("the DTB corpus is there")
  func present() { #expect(Self.inputs.count >= 5) }
}
