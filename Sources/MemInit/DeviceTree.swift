import PageFrames

/// A flattened device tree blob, read for what memory set-up needs: every `/memory`
/// node's every `reg` entry (RAM), `/memreserve/` entries, every `/reserved-memory` child
/// (with `no-map` recorded), the initrd named in `/chosen`, and the blob itself.
///
/// Every read is checked against the blob's bounds: a bad or truncated blob is a
/// `MemInitError`, never a read outside it. Portable: the kernel hands it the blob's
/// bytes, host tests and the fuzzer hand it bytes they built.
public struct DeviceTree {
  static let magic: UInt32 = 0xD00D_FEED
  static let tokenBeginNode: UInt32 = 1
  static let tokenEndNode: UInt32 = 2
  static let tokenProperty: UInt32 = 3
  static let tokenNop: UInt32 = 4
  static let tokenEnd: UInt32 = 9
  /// The header's size: ten 32-bit fields.
  public static let headerBytes = 40

  let blob: UnsafeRawBufferPointer
  /// Where the blob lies in physical memory (what gets reserved as `.deviceTree`).
  public let physicalAddress: UInt
  /// The header's `totalsize`: bytes the tree occupies.
  public let totalSize: Int
  let structOffset: Int
  let structSize: Int
  let stringsOffset: Int
  let stringsSize: Int
  let reserveMapOffset: Int

  /// The header's total size, read from the first 8 bytes, or nil when they are not a
  /// device tree header. For finding out how many bytes to hand to `init`.
  /// - Complexity: O(1).
  public static func totalSize(ofHeader bytes: UnsafeRawBufferPointer) -> Int? {
    guard bytes.count >= 8, bigEndian32(bytes, 0) == magic else { return nil }
    return Int(bigEndian32(bytes, 4))
  }

  /// Checks the header of the blob in `blob` (which must hold at least `totalsize`
  /// bytes) found at `physicalAddress`.
  /// - Throws: `MemInitError`: `deviceTreeBadMagic`, `deviceTreeBadVersion` (version
  ///   below 16, or last compatible version above 17), `deviceTreeTruncated` (the blob is
  ///   shorter than its header says, or a block lies outside it).
  /// - Complexity: O(1).
  public init(blob: UnsafeRawBufferPointer, physicalAddress: UInt) throws(MemInitError) {
    guard blob.count >= DeviceTree.headerBytes else { throw MemInitError(.deviceTreeTruncated, physicalAddress) }
    guard DeviceTree.bigEndian32(blob, 0) == DeviceTree.magic else { throw MemInitError(.deviceTreeBadMagic, physicalAddress) }
    let field = { (index: Int) -> Int in Int(DeviceTree.bigEndian32(blob, index * 4)) }
    let total = field(1)
    guard field(5) >= 16, field(6) <= 17 else { throw MemInitError(.deviceTreeBadVersion, physicalAddress) }
    guard total >= DeviceTree.headerBytes, total <= blob.count else { throw MemInitError(.deviceTreeTruncated, physicalAddress) }
    let structOffset = field(2), stringsOffset = field(3), reserveMapOffset = field(4)
    let stringsSize = field(8), structSize = field(9)
    // Each block must lie inside the blob; sizes are 32-bit, so these sums cannot wrap.
    guard structOffset + structSize <= total, stringsOffset + stringsSize <= total, reserveMapOffset + 16 <= total,
      reserveMapOffset & 7 == 0, structOffset & 3 == 0
    else { throw MemInitError(.deviceTreeTruncated, physicalAddress) }
    self.blob = UnsafeRawBufferPointer(rebasing: blob[0..<total])
    self.physicalAddress = physicalAddress
    self.totalSize = total
    self.structOffset = structOffset
    self.structSize = structSize
    self.stringsOffset = stringsOffset
    self.stringsSize = stringsSize
    self.reserveMapOffset = reserveMapOffset
  }

  static func bigEndian32(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
    UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
  }

  /// What `describe` found, for the boot banner.
  public struct Summary: Sendable {
    public var ramRanges = 0
    public var memoryReservations = 0
    public var reservedMemory = 0
    public var noMap = 0
    public var initrd = false
  }

  /// Adds the tree's RAM ranges to `memory` and reserves the blob, `/memreserve/`
  /// entries, `/reserved-memory` children (`.noMap` with `no-map`, else
  /// `.firmwareReserved`) and the initrd (`.initrd`). RAM ranges are rounded inwards to
  /// pages; reservations keep their exact bytes (they cover every page they touch).
  ///
  /// - Throws: `MemInitError`: `deviceTreeTruncated` for anything that runs past its
  ///   block, `deviceTreeBadCells` for cell counts out of range, and `BootMemory`'s
  ///   reasons (overlapping RAM, too many ranges, ...). `memory` may hold part of the
  ///   tree's content then.
  /// - Complexity: O(blob size).
  public func describe(into memory: inout BootMemory) throws(MemInitError) -> Summary {
    var summary = Summary()
    try memory.reserve(start: physicalAddress, end: physicalAddress + UInt(totalSize), as: .deviceTree)
    // /memreserve/: (address, size) pairs of 64 bits, ended by a pair of zeros.
    var entry = reserveMapOffset
    while true {
      guard entry + 16 <= totalSize else { throw truncated }
      let address = read64(entry), size = read64(entry + 8)
      if address == 0 && size == 0 { break }
      try memory.reserve(start: address, end: try end(address, size), as: .firmwareReserved)
      summary.memoryReservations += 1
      entry += 16
    }
    try walkStructure(into: &memory, &summary)
    return summary
  }

  private var truncated: MemInitError { MemInitError(.deviceTreeTruncated, physicalAddress) }

  private func end(_ start: UInt, _ size: UInt) throws(MemInitError) -> UInt {
    let (end, wrapped) = start.addingReportingOverflow(size)
    guard !wrapped else { throw MemInitError(.ramWraps, start) }
    return end
  }

  private func read32(_ offset: Int) -> UInt { UInt(DeviceTree.bigEndian32(blob, offset)) }
  private func read64(_ offset: Int) -> UInt { read32(offset) << 32 | read32(offset + 4) }

  /// The NUL-terminated string at `offset`, which must end before `limit`: (start, length).
  private func string(at offset: Int, limit: Int) throws(MemInitError) -> (Int, Int) {
    var cursor = offset
    while true {
      guard cursor < limit else { throw truncated }
      if blob[cursor] == 0 { return (offset, cursor - offset) }
      cursor += 1
    }
  }

  /// Whether the string (start, length) is `name`, or `name@...` when `unitAddress`.
  private func matches(_ text: (Int, Int), _ name: StaticString, unitAddress: Bool = false) -> Bool {
    let count = name.utf8CodeUnitCount
    guard text.1 == count || unitAddress && text.1 > count && blob[text.0 + count] == 64 /* @ */ else { return false }
    for i in 0..<count where blob[text.0 + i] != name.utf8Start[i] { return false }
    return true
  }

  /// A `reg`-style value: `cells` 32-bit cells from `offset`.
  private func cells(_ offset: Int, _ count: Int) -> UInt {
    var value: UInt = 0
    for i in 0..<count { value = value << 32 | read32(offset + 4 * i) }
    return value
  }

  private enum NodeKind { case other, memory, reservedMemory, reservedChild, chosen }

  private func walkStructure(into memory: inout BootMemory, _ summary: inout Summary) throws(MemInitError) {
    let limit = structOffset + structSize
    var cursor = structOffset
    var depth = 0
    var kind = NodeKind.other
    // Cells that apply to the children of the root and of /reserved-memory.
    var rootAddressCells = 2, rootSizeCells = 1
    var reservedAddressCells = 2, reservedSizeCells = 1
    // A /reserved-memory child's reg entries wait for its end, where no-map is known.
    var pending = InlineArray<8, PhysicalRange>(repeating: PhysicalRange(start: 0, end: 0))
    var pendingCount = 0
    var noMap = false
    var initrdStart: UInt? = nil, initrdEnd: UInt? = nil
    while true {
      guard cursor + 4 <= limit else { throw truncated }
      let token = UInt32(truncatingIfNeeded: read32(cursor))
      cursor += 4
      switch token {
      case DeviceTree.tokenBeginNode:
        let name = try string(at: cursor, limit: limit)
        cursor += (name.1 + 4) & ~3
        depth += 1
        if depth == 2 {
          kind = matches(name, "memory", unitAddress: true) ? .memory
            : matches(name, "reserved-memory") ? .reservedMemory : matches(name, "chosen") ? .chosen : .other
        } else if depth == 3 && kind == .reservedMemory {
          kind = .reservedChild
          pendingCount = 0
          noMap = false
        }
      case DeviceTree.tokenEndNode:
        if kind == .reservedChild && depth == 3 {
          for i in 0..<pendingCount {
            try memory.reserve(start: pending[i].start, end: pending[i].end, as: noMap ? .noMap : .firmwareReserved)
            if noMap { summary.noMap += 1 } else { summary.reservedMemory += 1 }
          }
          kind = .reservedMemory
        } else if kind == .chosen && depth == 2, let start = initrdStart, let end = initrdEnd, end > start {
          try memory.reserve(start: start, end: end, as: .initrd)
          summary.initrd = true
        }
        if depth == 2 { kind = .other }
        depth -= 1
        guard depth >= 0 else { throw truncated }
      case DeviceTree.tokenProperty:
        guard cursor + 8 <= limit else { throw truncated }
        let length = Int(read32(cursor)), nameOffset = Int(read32(cursor + 4))
        let value = cursor + 8
        guard value + length <= limit, nameOffset < stringsSize else { throw truncated }
        cursor = value + ((length + 3) & ~3)
        let name = try string(at: stringsOffset + nameOffset, limit: stringsOffset + stringsSize)
        if matches(name, "#address-cells") || matches(name, "#size-cells") {
          guard length == 4 else { throw truncated }
          let count = Int(read32(value))
          let isAddress = matches(name, "#address-cells")
          // Only the cells that describe RAM and reservations matter (PCI nodes use 3).
          let applies = depth == 1 || depth == 2 && kind == .reservedMemory
          guard !applies || count <= 2 else { throw MemInitError(.deviceTreeBadCells, UInt(count)) }
          if depth == 1 {
            if isAddress { rootAddressCells = count } else { rootSizeCells = count }
          } else if depth == 2 && kind == .reservedMemory {
            if isAddress { reservedAddressCells = count } else { reservedSizeCells = count }
          }
        } else if matches(name, "reg") && (kind == .memory && depth == 2 || kind == .reservedChild && depth == 3) {
          let (addressCells, sizeCells) = kind == .memory ? (rootAddressCells, rootSizeCells) : (reservedAddressCells, reservedSizeCells)
          guard addressCells >= 1, sizeCells >= 1 else { throw MemInitError(.deviceTreeBadCells, 0) }
          let entryBytes = 4 * (addressCells + sizeCells)
          var offset = value
          while offset + entryBytes <= value + length {
            let start = cells(offset, addressCells), size = cells(offset + 4 * addressCells, sizeCells)
            offset += entryBytes
            let rangeEnd = try end(start, size)
            if kind == .memory {
              // RAM whole pages only: the start rounded up, the end rounded down.
              guard let first = Page.roundUp(start) else { continue }
              let last = Page.roundDown(rangeEnd)
              if last > first {
                try memory.addRAM(start: first, size: last - first)
                summary.ramRanges += 1
              }
            } else if pendingCount < 8 {
              pending[pendingCount] = PhysicalRange(start: start, end: rangeEnd)
              pendingCount += 1
            }
          }
        } else if matches(name, "no-map") && kind == .reservedChild {
          noMap = true
        } else if kind == .chosen && depth == 2 && (matches(name, "linux,initrd-start") || matches(name, "linux,initrd-end")) {
          guard length == 4 || length == 8 else { throw truncated }
          let address = length == 4 ? read32(value) : read64(value)
          if matches(name, "linux,initrd-start") { initrdStart = address } else { initrdEnd = address }
        }
      case DeviceTree.tokenNop:
        continue
      case DeviceTree.tokenEnd:
        return
      default:
        throw truncated
      }
    }
  }
}
