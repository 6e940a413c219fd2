// What the boot core needs from a device tree to start the other cores with PSCI:
// the conduit (/psci's "method") and the number of cpu nodes under /cpus. Every read is
// checked against the blob's bounds. (MemInit's DeviceTree reads memory, not cores.)
#if arch(arm64) && os(none)
import ArchSupport

/// The cores as a flattened device tree describes them.
struct DeviceTreeCores {
  /// `ARCH_START_PSCI_HVC` or `ARCH_START_PSCI_SMC` from /psci's "method" property;
  /// nil without a /psci node or for another method.
  var psciMethod: Int32? = nil
  /// The `cpu@...` children of /cpus.
  var cpuNodes = 0

  private static let magic: UInt32 = 0xD00D_FEED
  private static let headerBytes = 40
  // Header fields, as byte offsets.
  private static let structOffsetField = 8
  private static let stringsOffsetField = 12
  private static let stringsSizeField = 32
  private static let structSizeField = 36
  // Structure block tokens.
  private static let tokenBeginNode: UInt32 = 1
  private static let tokenEndNode: UInt32 = 2
  private static let tokenProperty: UInt32 = 3
  private static let tokenNop: UInt32 = 4
  private static let tokenEnd: UInt32 = 9
  private static let unitAddressSeparator: UInt8 = 0x40  // "@"

  /// Reads the tree in `blob` (its header's total size, or more).
  /// - Returns: nil for a blob that is not a well-formed tree.
  /// - Complexity: O(blob size).
  init?(blob: UnsafeRawBufferPointer) {
    guard blob.count >= DeviceTreeCores.headerBytes, DeviceTreeCores.word(blob, 0) == DeviceTreeCores.magic else { return nil }
    let structStart = Int(DeviceTreeCores.word(blob, DeviceTreeCores.structOffsetField))
    let structEnd = structStart + Int(DeviceTreeCores.word(blob, DeviceTreeCores.structSizeField))
    let stringsStart = Int(DeviceTreeCores.word(blob, DeviceTreeCores.stringsOffsetField))
    let stringsEnd = stringsStart + Int(DeviceTreeCores.word(blob, DeviceTreeCores.stringsSizeField))
    guard structEnd <= blob.count, stringsEnd <= blob.count, structStart & 3 == 0 else { return nil }
    var cursor = structStart
    var depth = 0
    var inPSCI = false
    var inCPUs = false
    while true {
      guard cursor + 4 <= structEnd else { return nil }
      let token = DeviceTreeCores.word(blob, cursor)
      cursor += 4
      switch token {
      case DeviceTreeCores.tokenBeginNode:
        guard let name = DeviceTreeCores.string(blob, at: cursor, end: structEnd) else { return nil }
        cursor = (name.upperBound + 1 + 3) & ~3
        depth += 1
        if depth == 2 {
          inPSCI = DeviceTreeCores.isNode(blob, name, "psci")
          inCPUs = DeviceTreeCores.isNode(blob, name, "cpus")
        } else if depth == 3 && inCPUs && DeviceTreeCores.hasUnitAddress(blob, name, "cpu") {
          cpuNodes += 1
        }
      case DeviceTreeCores.tokenEndNode:
        guard depth > 0 else { return nil }
        depth -= 1
        if depth < 2 { inPSCI = false; inCPUs = false }
      case DeviceTreeCores.tokenProperty:
        guard cursor + 8 <= structEnd else { return nil }
        let length = Int(DeviceTreeCores.word(blob, cursor))
        let nameOffset = Int(DeviceTreeCores.word(blob, cursor + 4))
        let value = cursor + 8
        guard value + length <= structEnd, stringsStart + nameOffset < stringsEnd,
          let name = DeviceTreeCores.string(blob, at: stringsStart + nameOffset, end: stringsEnd)
        else { return nil }
        cursor = (value + length + 3) & ~3
        if depth == 2 && inPSCI && DeviceTreeCores.equals(blob, name, "method"), length >= 1 {
          let method = value..<(value + length - 1)  // without the NUL
          if DeviceTreeCores.equals(blob, method, "hvc") {
            psciMethod = ARCH_START_PSCI_HVC
          } else if DeviceTreeCores.equals(blob, method, "smc") {
            psciMethod = ARCH_START_PSCI_SMC
          }
        }
      case DeviceTreeCores.tokenNop:
        continue
      case DeviceTreeCores.tokenEnd:
        return
      default:
        return nil
      }
    }
  }

  /// The big-endian word at `offset` (in bounds: the caller checked).
  private static func word(_ blob: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
    UInt32(bigEndian: blob.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
  }

  /// The bytes of the NUL-terminated string at `start`, which must end before `end`.
  private static func string(_ blob: UnsafeRawBufferPointer, at start: Int, end: Int) -> Range<Int>? {
    var cursor = start
    while cursor < end {
      if blob[cursor] == 0 { return start..<cursor }
      cursor += 1
    }
    return nil
  }

  /// Whether the bytes `range` are `text`.
  private static func equals(_ blob: UnsafeRawBufferPointer, _ range: Range<Int>, _ text: StaticString) -> Bool {
    guard range.count == text.utf8CodeUnitCount else { return false }
    for i in 0..<range.count where blob[range.lowerBound + i] != text.utf8Start[i] { return false }
    return true
  }

  /// Whether the node name `range` is `base` or `base@unit-address`.
  private static func isNode(_ blob: UnsafeRawBufferPointer, _ range: Range<Int>, _ base: StaticString) -> Bool {
    equals(blob, range, base) || hasUnitAddress(blob, range, base)
  }

  /// Whether the node name `range` is `base@unit-address`.
  private static func hasUnitAddress(_ blob: UnsafeRawBufferPointer, _ range: Range<Int>, _ base: StaticString) -> Bool {
    let count = base.utf8CodeUnitCount
    guard range.count > count + 1, blob[range.lowerBound + count] == unitAddressSeparator else { return false }
    return equals(blob, range.lowerBound..<(range.lowerBound + count), base)
  }
}

#endif
