// A minimal flattened-device-tree reader: the /memory node's first `reg` range.
#if arch(arm64) && os(none)

private let fdtMagic: UInt32 = 0xD00D_FEED
private let tokenBeginNode: UInt32 = 1
private let tokenEndNode: UInt32 = 2
private let tokenProperty: UInt32 = 3
private let tokenNop: UInt32 = 4
private let tokenEnd: UInt32 = 9

/// A device tree blob in memory.
struct DeviceTree {
  let base: UInt
  let totalSize: UInt

  /// Validates the header at `address`; nil if it is not a DTB.
  init?(at address: UInt) {
    guard address != 0, address & 3 == 0 else { return nil }
    guard DeviceTree.bigEndian32(address) == fdtMagic else { return nil }
    base = address
    totalSize = UInt(DeviceTree.bigEndian32(address + 4))
  }

  static func bigEndian32(_ address: UInt) -> UInt32 {
    UInt32(bigEndian: UnsafePointer<UInt32>(bitPattern: address)!.pointee)
  }

  private func headerField(_ offset: UInt) -> UInt { UInt(DeviceTree.bigEndian32(base + offset)) }

  private func nameEquals(_ address: UInt, _ expected: StaticString, prefixOnly: Bool) -> Bool {
    let text = UnsafePointer<UInt8>(bitPattern: address)!
    var index = 0
    var matched = true
    expected.withUTF8Buffer { bytes in
      for byte in bytes {
        if text[index] != byte { matched = false; return }
        index += 1
      }
    }
    guard matched else { return false }
    let next = text[index]
    return prefixOnly ? (next == 0 || next == 64 /* @ */) : next == 0
  }

  /// The first (base, size) of the `reg` property of the top-level `memory` node.
  func firstMemoryRange() -> (base: UInt, size: UInt)? {
    let structBlock = base + headerField(8)
    let strings = base + headerField(12)
    var cursor = structBlock
    var depth = 0
    var inMemoryNode = false
    var addressCells: UInt = 2
    var sizeCells: UInt = 2
    while cursor < base + totalSize {
      let token = DeviceTree.bigEndian32(cursor)
      cursor += 4
      switch token {
      case tokenBeginNode:
        depth += 1
        inMemoryNode = depth == 2 && nameEquals(cursor, "memory", prefixOnly: true)
        var length: UInt = 0
        while UnsafePointer<UInt8>(bitPattern: cursor + length)!.pointee != 0 { length += 1 }
        cursor += (length + 4) & ~3
      case tokenEndNode:
        depth -= 1
        inMemoryNode = false
      case tokenProperty:
        let length = UInt(DeviceTree.bigEndian32(cursor))
        let nameOffset = UInt(DeviceTree.bigEndian32(cursor + 4))
        let value = cursor + 8
        cursor = value + ((length + 3) & ~3)
        let name = strings + nameOffset
        if depth == 1 && nameEquals(name, "#address-cells", prefixOnly: false) {
          addressCells = UInt(DeviceTree.bigEndian32(value))
        } else if depth == 1 && nameEquals(name, "#size-cells", prefixOnly: false) {
          sizeCells = UInt(DeviceTree.bigEndian32(value))
        } else if inMemoryNode && nameEquals(name, "reg", prefixOnly: false) {
          guard length >= (addressCells + sizeCells) * 4 else { return nil }
          let rangeBase = readCells(value, count: addressCells)
          let rangeSize = readCells(value + addressCells * 4, count: sizeCells)
          return (rangeBase, rangeSize)
        }
      case tokenNop:
        continue
      default:
        return nil  // tokenEnd or garbage
      }
    }
    return nil
  }

  private func readCells(_ address: UInt, count: UInt) -> UInt {
    var value: UInt = 0
    var index: UInt = 0
    while index < count {
      value = (value << 32) | UInt(DeviceTree.bigEndian32(address + index * 4))
      index += 1
    }
    return value
  }
}

#endif
