import FlattenedDeviceTree
import PageFrames

/// The state of one walk over a device tree's structure block for memory: which node
/// the walk is in, the cells that apply there, and the node's `reg` until its end shows
/// what the node is (`device_type = "memory"`, `no-map`), and the initrd's bounds.
///
/// A node's `reg` is kept as the blob's own bytes (a view, not a copy), so a node may
/// have any number of entries and the reader holds no table of them.
struct MemoryNodeReader {
  private enum NodeKind { case other, reservedMemory, reservedChild, chosen }

  var summary = DeviceTree.Summary()
  /// The tree's physical address: what a malformed property is reported with.
  let treeAddress: UInt
  private var kind = NodeKind.other
  // Cells that apply to the children of the root and of /reserved-memory.
  private var rootAddressCells = 2, rootSizeCells = 1
  private var reservedAddressCells = 2, reservedSizeCells = 1
  /// The current child of the root (or of /reserved-memory)'s `reg`, until it ends.
  private var reg: DeviceTreeProperty? = nil
  /// Whether the current child of the root is memory: named `memory`/`memory@…`, or
  /// with `device_type = "memory"`.
  private var isMemory = false
  /// Whether the current child of the root says `status` other than "okay" (QEMU's
  /// secure-only RAM under `secure=on`, say): not RAM for this kernel, as Linux reads it.
  private var disabled = false
  private var noMap = false
  private var initrdStart: UInt? = nil, initrdEnd: UInt? = nil

  init(treeAddress: UInt) { self.treeAddress = treeAddress }

  /// `start + size`, or `reason` (`ramWraps`, `reservationWraps`) at `start` when it
  /// passes 2^64.
  static func end(_ start: UInt, _ size: UInt, _ reason: MemInitFailure) throws(MemInitError) -> UInt {
    let (end, wrapped) = start.addingReportingOverflow(size)
    guard !wrapped else { throw MemInitError(reason, start) }
    return end
  }

  /// Takes one token; the walker is at `depth` after it.
  mutating func read(_ token: DeviceTreeToken, depth: Int, into memory: inout BootMemory) throws(MemInitError) {
    switch token {
    case .beginNode(let name):
      if depth == 2 {
        kind = name.equals("reserved-memory") ? .reservedMemory : name.equals("chosen") ? .chosen : .other
        isMemory = kind == .other && name.isNode("memory")
        disabled = false
        reg = nil
      } else if depth == 3 && kind == .reservedMemory {
        kind = .reservedChild
        reg = nil
        noMap = false
      }
    case .endNode:
      let ended = depth + 1
      if kind == .reservedChild && ended == 3 {
        if let reg { try readReg(reg, into: &memory) }
        kind = .reservedMemory
      } else if kind == .other && ended == 2 && isMemory && !disabled, let reg {
        try readReg(reg, into: &memory)
      } else if kind == .chosen && ended == 2, let start = initrdStart, let end = initrdEnd, end > start {
        try memory.reserve(start: start, end: end, as: .initrd)
        summary.initrd = true
      }
      if ended == 2 {
        kind = .other
        isMemory = false
        reg = nil
      }
    case .property(let property):
      try read(property, depth: depth)
    }
  }

  private mutating func read(_ property: DeviceTreeProperty, depth: Int) throws(MemInitError) {
    let name = property.name
    if name.equals("#address-cells") || name.equals("#size-cells") {
      guard let cells = property.cell else { throw MemInitError(.deviceTreeTruncated, treeAddress) }
      let count = Int(cells)
      let isAddress = name.equals("#address-cells")
      // Only the cells that describe RAM and reservations matter (PCI nodes use 3).
      let applies = depth == 1 || depth == 2 && kind == .reservedMemory
      guard !applies || count <= 2 else { throw MemInitError(.deviceTreeBadCells, UInt(count)) }
      if depth == 1 {
        if isAddress { rootAddressCells = count } else { rootSizeCells = count }
      } else if depth == 2 && kind == .reservedMemory {
        if isAddress { reservedAddressCells = count } else { reservedSizeCells = count }
      }
    } else if name.equals("reg") && (kind == .other && depth == 2 || kind == .reservedChild && depth == 3) {
      reg = property
    } else if name.equals("device_type") && kind == .other && depth == 2 && property.isString("memory") {
      isMemory = true
    } else if name.equals("status") && kind == .other && depth == 2 {
      disabled = !DeviceTree.isAvailable(status: property)
    } else if name.equals("no-map") && kind == .reservedChild && depth == 3 {
      noMap = true
    } else if kind == .chosen && depth == 2 && (name.equals("linux,initrd-start") || name.equals("linux,initrd-end")) {
      guard let address = property.number else { throw MemInitError(.deviceTreeTruncated, treeAddress) }
      if name.equals("linux,initrd-start") { initrdStart = UInt(address) } else { initrdEnd = UInt(address) }
    }
  }

  /// A memory node's RAM or a `/reserved-memory` child's entries: every one of them.
  private mutating func readReg(_ property: DeviceTreeProperty, into memory: inout BootMemory) throws(MemInitError) {
    let isRAM = kind == .other
    let (addressCells, sizeCells) = isRAM ? (rootAddressCells, rootSizeCells) : (reservedAddressCells, reservedSizeCells)
    guard addressCells >= 1, sizeCells >= 1 else { throw MemInitError(.deviceTreeBadCells, 0) }
    let entryBytes = 4 * (addressCells + sizeCells)
    var offset = 0
    while let start = property.cells(at: offset, count: addressCells),
      let size = property.cells(at: offset + 4 * addressCells, count: sizeCells)
    {
      offset += entryBytes
      let rangeEnd = try MemoryNodeReader.end(UInt(start), UInt(size), isRAM ? .ramWraps : .reservationWraps)
      if isRAM {
        // RAM whole pages only: the start rounded up, the end rounded down.
        guard let first = Page.roundUp(UInt(start)) else { continue }
        let last = Page.roundDown(rangeEnd)
        if last > first {
          try memory.addRAM(start: first, size: last - first)
          summary.ramRanges += 1
        }
      } else if size > 0 {
        try memory.reserve(start: UInt(start), end: rangeEnd, as: noMap ? .noMap : .firmwareReserved)
        if noMap { summary.noMap += 1 } else { summary.reservedMemory += 1 }
      }
    }
  }
}
