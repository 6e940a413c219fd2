import MemInit
import PageFrames
import Testing

/// The device tree reader at its edges: nodes with many `reg` entries, memory nodes known
/// by `device_type`, blobs at the top of the address space, and firmware's RAM total
/// counted apart from BootMemory. Each expectation comes from the tree the test built.
struct DeviceTreeEdgeTests {
  let dt = DeviceTreeTests()

  /// A builder inside the root node (2 + 2 cells) after a memory node of 1 GiB at
  /// 0x40000000: what each tree here starts with.
  func rootWithRAM() -> DeviceTreeBuilder {
    var b = DeviceTreeBuilder()
    b.begin("")
    b.cells("#address-cells", [2])
    b.cells("#size-cells", [2])
    b.begin("memory@40000000")
    b.property("device_type", Array("memory".utf8) + [0])
    b.reg([(0x4000_0000, 1 << 30)])
    b.end()
    return b
  }

  /// A tree with 1 GiB of RAM at 0x40000000 and one `/reserved-memory` child `name` with
  /// `regs` (2 + 2 cells), `no-map` after its `reg` when `noMap`.
  func reservedTree(_ regs: [(UInt64, UInt64)], noMap: Bool) -> [UInt8] {
    var b = rootWithRAM()
    b.begin("reserved-memory")
    b.cells("#address-cells", [2])
    b.cells("#size-cells", [2])
    b.begin("carveout@48000000")
    b.reg(regs)
    if noMap { b.property("no-map", []) }
    b.end()
    b.end()
    b.end()
    return b.build()
  }

  @Test("a /reserved-memory child's every reg entry is reserved, however many, no-map read after reg")
  func manyReservedEntries() throws {
    for noMap in [false, true] {
      let regs: [(UInt64, UInt64)] = (0..<40).map { (0x4800_0000 + UInt64($0) * 0x10_0000, 0x3000) }
      let (memory, summary) = try dt.read(reservedTree(regs, noMap: noMap), at: 0x4000_0000)
      #expect((noMap ? summary.noMap : summary.reservedMemory) == 40)
      for (start, size) in regs {
        let reservation = memory.firstReservation(overlapping: PhysicalRange(start: UInt(start), end: UInt(start + size)))
        #expect(reservation?.range == PhysicalRange(start: UInt(start), end: UInt(start + size)))
        #expect(reservation?.owner == (noMap ? .noMap : .firmwareReserved))
      }
    }
    // Past the table: refused, never dropped.
    let tooMany: [(UInt64, UInt64)] = (0..<130).map { (0x4800_0000 + UInt64($0) * 0x10_0000, 0x1000) }
    #expect(throws: MemInitError(.tooManyReservations, 0x4800_0000 + 127 * 0x10_0000)) { try dt.read(reservedTree(tooMany, noMap: false)) }
  }

  @Test("a node with device_type = \"memory\" is RAM whatever its name; one without it and not named memory is not")
  func memoryByDeviceType() throws {
    for typed in [true, false] {
      var b = DeviceTreeBuilder()
      b.begin("")
      b.cells("#address-cells", [2])
      b.cells("#size-cells", [2])
      b.begin("ram@80000000")
      b.reg([(0x8000_0000, 1 << 30)])  // reg before device_type
      if typed { b.property("device_type", Array("memory".utf8) + [0]) }
      b.end()
      b.begin("sram@10000000")
      b.property("device_type", Array("mmio".utf8) + [0])
      b.reg([(0x1000_0000, 1 << 20)])
      b.end()
      b.end()
      let (memory, summary) = try dt.read(b.build(), at: 0x8000_0000)
      #expect(memory.ram.count == (typed ? 1 : 0) && summary.ramRanges == (typed ? 1 : 0))
      if typed { #expect(memory.ram[0] == PhysicalRange(start: 0x8000_0000, end: 0xC000_0000)) }
    }
  }

  @Test("a memory node whose status is not okay (QEMU's secure RAM under secure=on) is not RAM, in describe and in the raw total")
  func disabledMemoryNodes() throws {
    for status in [nil, "okay", "ok", "disabled", "reserved", "fail"] {
      var b = rootWithRAM()
      b.begin("secram@e000000")
      b.property("device_type", Array("memory".utf8) + [0])
      if let status { b.property("status", Array(status.utf8) + [0]) }
      b.reg([(0x0E00_0000, 16 << 20)])
      b.end()
      b.end()
      let blob = b.build()
      let available = status == nil || status == "okay" || status == "ok"
      let (memory, summary) = try dt.read(blob, at: 0x4000_0000)
      #expect(memory.ram.count == (available ? 2 : 1) && summary.ramRanges == (available ? 2 : 1), "status \(status ?? "none")")
      #expect(memory.ramRange(containing: 0x0E00_0000) == nil || available)
      let total = try blob.withUnsafeBytes { bytes throws(MemInitError) in
        try DeviceTree(blob: bytes, physicalAddress: 0x4000_0000).reportedRAMBytes()
      }
      #expect(total == (1 << 30) + (available ? 16 << 20 : 0), "status \(status ?? "none")")
    }
  }

  @Test("a blob that passes or ends at 2^64 is refused; one just below it is read without a trap")
  func blobAtTopOfAddressSpace() throws {
    let blob = dt.tree(memory: [[(0x4000_0000, 1 << 30)]])
    let size = UInt(blob.count)
    for address in [UInt.max - 100, UInt.max - size + 1, 0 &- size] {
      #expect(throws: MemInitError(.deviceTreeOutsideAddressSpace, address)) { try dt.read(blob, at: address) }
    }
    let highest = 0 &- size &- 1
    let (memory, _) = try dt.read(blob, at: highest)
    #expect(memory.reservation(0) == Reservation(PhysicalRange(start: highest, end: UInt.max), .deviceTree))
  }

  @Test("firmware's RAM total is the raw sum of the memory nodes' reg sizes, and the map says MISMATCH when RAM is lost")
  func reportedRAMBytes() throws {
    // Two nodes (one by device_type only), one reg with two entries, one size not a
    // whole number of pages: the bytes rounding drops are missing from the map.
    var b = DeviceTreeBuilder()
    b.begin("")
    b.cells("#address-cells", [2])
    b.cells("#size-cells", [2])
    b.begin("memory@40000000")
    b.reg([(0x4000_0000, 16 << 20), (0x4200_0000, 8 << 20)])
    b.end()
    b.begin("dram@48000000")
    b.property("device_type", Array("memory".utf8) + [0])
    b.reg([(0x4800_0000, (4 << 20) + 0x800)])
    b.end()
    b.begin("cpus")
    b.reg([(0x4900_0000, 1 << 20)])  // not memory
    b.end()
    b.end()
    let blob = b.build()
    let expected: UInt = (16 << 20) + (8 << 20) + (4 << 20) + 0x800
    let (memory, _) = try dt.read(blob)
    var result: Result<UInt, MemInitError> = .failure(MemInitError(.deviceTreeTruncated, 0))
    blob.withUnsafeBytes { bytes in
      do throws(MemInitError) {
        result = .success(try DeviceTree(blob: bytes, physicalAddress: 0x4000_0000).reportedRAMBytes())
      } catch {
        result = .failure(error)
      }
    }
    let total = try result.get()
    #expect(total == expected)
    let span = BootMemoryTests.Span(bytes: 0x90_00000, ram: [(0, 16 << 20), (32 << 20, 8 << 20), (128 << 20, 4 << 20)])
    let config = MemInitConfig(memory: memory, kernelStart: 0x4020_0000, kernelEnd: 0x4022_0000,
                               directMapOffset: Int(bitPattern: span.host) - 0x4000_0000, zeroFill: hostZeroFill)
    let frames = try buildPageFrames(config, try planLayout(config))
    #expect(!MemoryMap(frames, reportedRAMBytes: total).isExact)
    #expect(MemoryMap(frames, reportedRAMBytes: total & ~0xFFF).isExact)
    withExtendedLifetime(span) {}
  }
}
