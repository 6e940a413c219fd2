/// Builds flattened device tree blobs for tests (version 17, big-endian), so the reader
/// can be checked against trees whose content the test knows.
struct DeviceTreeBuilder {
  private var structure: [UInt8] = []
  private var strings: [UInt8] = []
  var reserveMap: [(UInt64, UInt64)] = []

  private mutating func word(_ value: UInt32) {
    structure += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
  }

  private static func bytes(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
  }

  mutating func begin(_ name: String) {
    word(1)
    structure += Array(name.utf8) + [0]
    while structure.count % 4 != 0 { structure.append(0) }
  }

  mutating func end() { word(2) }

  /// A raw 32-bit word in the structure block (a NOP, or a token the format lacks).
  mutating func rawWord(_ value: UInt32) { word(value) }

  mutating func property(_ name: String, _ value: [UInt8]) {
    let nameBytes = Array(name.utf8) + [0]
    var offset = 0
    if let found = findString(nameBytes) { offset = found } else {
      offset = strings.count
      strings += nameBytes
    }
    word(3)
    word(UInt32(value.count))
    word(UInt32(offset))
    structure += value
    while structure.count % 4 != 0 { structure.append(0) }
  }

  /// A property of 32-bit cells.
  mutating func cells(_ name: String, _ values: [UInt32]) { property(name, values.flatMap(Self.bytes)) }

  /// `reg` with 64-bit addresses and sizes split into 2 + 2 cells (or 1 + 1 when `narrow`).
  mutating func reg(_ ranges: [(UInt64, UInt64)], addressCells: Int = 2, sizeCells: Int = 2) {
    var values: [UInt32] = []
    for (start, size) in ranges {
      if addressCells == 2 { values.append(UInt32(start >> 32)) }
      values.append(UInt32(truncatingIfNeeded: start))
      if sizeCells == 2 { values.append(UInt32(size >> 32)) }
      values.append(UInt32(truncatingIfNeeded: size))
    }
    cells("reg", values)
  }

  private func findString(_ bytes: [UInt8]) -> Int? {
    guard strings.count >= bytes.count else { return nil }
    for start in 0...(strings.count - bytes.count) where Array(strings[start..<start + bytes.count]) == bytes { return start }
    return nil
  }

  /// The blob: header, reservation map, structure (with FDT_END), strings.
  func build() -> [UInt8] {
    var reserve: [UInt8] = []
    for (address, size) in reserveMap + [(0, 0)] {
      reserve += Self.bytes(UInt32(address >> 32)) + Self.bytes(UInt32(truncatingIfNeeded: address))
      reserve += Self.bytes(UInt32(size >> 32)) + Self.bytes(UInt32(truncatingIfNeeded: size))
    }
    let structureBlock = structure + Self.bytes(9)
    let reserveOffset = 40 + 8 // header, then padding to 8
    let structOffset = reserveOffset + reserve.count
    let stringsOffset = structOffset + structureBlock.count
    let total = stringsOffset + strings.count
    var header: [UInt8] = []
    for field in [0xD00D_FEED, total, structOffset, stringsOffset, reserveOffset, 17, 16, 0, strings.count, structureBlock.count] {
      header += Self.bytes(UInt32(field))
    }
    return header + [UInt8](repeating: 0, count: 8) + reserve + structureBlock + strings
  }
}
