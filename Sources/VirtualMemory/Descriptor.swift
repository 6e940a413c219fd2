/// ARMv8-A stage-1 translation descriptors for the 4 KiB granule and 48-bit virtual
/// addresses (Arm ARM D8.3): four levels, 512 entries per table, blocks at levels 1 and
/// 2 (1 GiB and 2 MiB), pages at level 3.
public enum Descriptor {
  /// Bit 0: the descriptor is valid.
  public static let valid: UInt64 = 1 << 0
  /// Bit 1: a table (levels 0-2) or a page (level 3); clear in a block.
  public static let tableOrPage: UInt64 = 1 << 1
  /// AttrIndx, bits 4:2: the MAIR_EL1 byte the memory type comes from.
  public static let attributeIndexShift: UInt64 = 2
  /// MAIR_EL1 byte 0: Normal memory, inner and outer write-back, read/write-allocate.
  public static let normalIndex: UInt64 = 0
  /// MAIR_EL1 byte 1: Device-nGnRE.
  public static let deviceIndex: UInt64 = 1
  /// The MAIR_EL1 value the indices above assume.
  public static let mair: UInt64 = 0xff | 0x04 << 8
  /// AP[1], bit 6: EL0 may access.
  public static let user: UInt64 = 1 << 6
  /// AP[2], bit 7: read-only.
  public static let readOnly: UInt64 = 1 << 7
  /// SH, bits 9:8: inner shareable.
  public static let innerShareable: UInt64 = 3 << 8
  /// AF, bit 10: accessed (set, so no access-flag fault is taken).
  public static let accessFlag: UInt64 = 1 << 10
  /// nG, bit 11: not global (tagged with the ASID).
  public static let notGlobal: UInt64 = 1 << 11
  /// PXN, bit 53: never executable at EL1.
  public static let privilegedExecuteNever: UInt64 = 1 << 53
  /// UXN, bit 54: never executable at EL0.
  public static let userExecuteNever: UInt64 = 1 << 54
  /// The bits that give a leaf's memory type: AttrIndx and SH. Changing them needs
  /// break-before-make; permission bits may change in place.
  public static let memoryTypeMask: UInt64 = 7 << attributeIndexShift | innerShareable
  /// Output address, bits 47:12.
  public static let addressMask: UInt64 = 0x0000_ffff_ffff_f000

  /// Entries per table.
  public static let entries = 512
  /// Levels of the walk (0 to 3).
  public static let levels = 4
  /// Bits of virtual (and output) address: the walk covers `[0, 1 << addressBits)`.
  public static let addressBits = 48
  /// One past the highest address a table translates.
  public static let addressLimit: UInt = 1 << 48

  /// Bytes one entry at `level` maps: 512 GiB, 1 GiB, 2 MiB, 4 KiB.
  /// - Complexity: O(1).
  @inline(__always)
  public static func span(level: Int) -> UInt { 1 << UInt(39 - 9 * level) }

  /// The index of `address` in a table at `level`.
  /// - Complexity: O(1).
  @inline(__always)
  public static func index(_ address: UInt, level: Int) -> Int { Int(truncatingIfNeeded: (address >> UInt(39 - 9 * level)) & 511) }

  /// A table descriptor pointing at the table page at `physical`.
  /// - Complexity: O(1).
  @inline(__always)
  public static func table(_ physical: UInt) -> UInt64 { UInt64(physical) & addressMask | valid | tableOrPage }

  /// A block (levels 1, 2) or page (level 3) descriptor for `physical` with `attributes`.
  /// - Precondition: `attributes.isValid`, `physical` aligned to `span(level)`.
  /// - Complexity: O(1).
  public static func leaf(_ physical: UInt, _ attributes: MapAttributes, level: Int) -> UInt64 {
    var bits = UInt64(physical) & addressMask | valid | accessFlag
    if level == 3 { bits |= tableOrPage }
    if attributes.contains(.device) {
      bits |= deviceIndex << attributeIndexShift
    } else {
      bits |= normalIndex << attributeIndexShift | innerShareable
    }
    if !attributes.contains(.write) { bits |= readOnly }
    if attributes.contains(.user) { bits |= user }
    if !attributes.contains(.global) { bits |= notGlobal }
    let userExecutes = attributes.contains(.user) && attributes.contains(.execute)
    let kernelExecutes = !attributes.contains(.user) && attributes.contains(.execute)
    if !userExecutes { bits |= userExecuteNever }
    if !kernelExecutes { bits |= privilegedExecuteNever }
    return bits
  }

  /// The attributes a leaf descriptor grants (the inverse of `leaf`).
  /// - Complexity: O(1).
  public static func attributes(ofLeaf bits: UInt64) -> MapAttributes {
    var attributes: MapAttributes = .read
    if bits & readOnly == 0 { attributes.insert(.write) }
    if bits & user != 0 {
      attributes.insert(.user)
      if bits & userExecuteNever == 0 { attributes.insert(.execute) }
    } else if bits & privilegedExecuteNever == 0 {
      attributes.insert(.execute)
    }
    if (bits >> attributeIndexShift) & 7 == deviceIndex { attributes.insert(.device) }
    if bits & notGlobal == 0 { attributes.insert(.global) }
    return attributes
  }

  /// Whether `bits` at `level` points at a next-level table (not a leaf).
  /// - Complexity: O(1).
  @inline(__always)
  public static func isTable(_ bits: UInt64, level: Int) -> Bool { level < 3 && bits & 3 == 3 }

  /// Whether `bits` at `level` is a valid leaf: a block at levels 1-2, a page at level 3.
  /// - Complexity: O(1).
  @inline(__always)
  public static func isLeaf(_ bits: UInt64, level: Int) -> Bool {
    level == 3 ? bits & 3 == 3 : (level >= 1 && bits & 3 == 1)
  }

  /// The output (or next-table) address of a valid descriptor.
  /// - Complexity: O(1).
  @inline(__always)
  public static func address(_ bits: UInt64) -> UInt { UInt(truncatingIfNeeded: bits & addressMask) }
}
