import FlattenedDeviceTree
import PageFrames

/// The state of one walk over a device tree's structure block for memory: which node
/// the walk is in, the cells that apply there, a `/reserved-memory` child's entries
/// until its end shows whether it is `no-map`, and the initrd's bounds.
struct MemoryNodeReader {
  private enum NodeKind { case other, memory, reservedMemory, reservedChild, chosen }

  /// Entries of one `/reserved-memory` child that are kept (more are ignored).
  static let pendingCapacity = 8

  var summary = DeviceTree.Summary()
  /// The tree's physical address: what a malformed property is reported with.
  let treeAddress: UInt
  private var kind = NodeKind.other
  // Cells that apply to the children of the root and of /reserved-memory.
  private var rootAddressCells = 2, rootSizeCells = 1
  private var reservedAddressCells = 2, reservedSizeCells = 1
  private var pending = InlineArray<8, PhysicalRange>(repeating: PhysicalRange(start: 0, end: 0))
  private var pendingCount = 0
  private var noMap = false
  private var initrdStart: UInt? = nil, initrdEnd: UInt? = nil

  init(treeAddress: UInt) { self.treeAddress = treeAddress }

  /// `start + size`, or `ramWraps` when it passes 2^64.
  static func end(_ start: UInt, _ size: UInt) throws(MemInitError) -> UInt {
    let (end, wrapped) = start.addingReportingOverflow(size)
    guard !wrapped else { throw MemInitError(.ramWraps, start) }
    return end
  }

  /// Takes one token; the walker is at `depth` after it.
  mutating func read(_ token: DeviceTreeToken, depth: Int, into memory: inout BootMemory) throws(MemInitError) {
    switch token {
    case .beginNode(let name):
      if depth == 2 {
        kind = name.isNode("memory") ? .memory
          : name.equals("reserved-memory") ? .reservedMemory : name.equals("chosen") ? .chosen : .other
      } else if depth == 3 && kind == .reservedMemory {
        kind = .reservedChild
        pendingCount = 0
        noMap = false
      }
    case .endNode:
      let ended = depth + 1
      if kind == .reservedChild && ended == 3 {
        for index in 0..<pendingCount {
          try memory.reserve(start: pending[index].start, end: pending[index].end, as: noMap ? .noMap : .firmwareReserved)
          if noMap { summary.noMap += 1 } else { summary.reservedMemory += 1 }
        }
        kind = .reservedMemory
      } else if kind == .chosen && ended == 2, let start = initrdStart, let end = initrdEnd, end > start {
        try memory.reserve(start: start, end: end, as: .initrd)
        summary.initrd = true
      }
      if ended == 2 { kind = .other }
    case .property(let property):
      try read(property, depth: depth, into: &memory)
    }
  }

  private mutating func read(_ property: DeviceTreeProperty, depth: Int, into memory: inout BootMemory) throws(MemInitError) {
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
    } else if name.equals("reg") && (kind == .memory && depth == 2 || kind == .reservedChild && depth == 3) {
      try readReg(property, into: &memory)
    } else if name.equals("no-map") && kind == .reservedChild {
      noMap = true
    } else if kind == .chosen && depth == 2 && (name.equals("linux,initrd-start") || name.equals("linux,initrd-end")) {
      guard let address = property.number else { throw MemInitError(.deviceTreeTruncated, treeAddress) }
      if name.equals("linux,initrd-start") { initrdStart = UInt(address) } else { initrdEnd = UInt(address) }
    }
  }

  /// A `/memory` node's RAM or a `/reserved-memory` child's entries.
  private mutating func readReg(_ property: DeviceTreeProperty, into memory: inout BootMemory) throws(MemInitError) {
    let (addressCells, sizeCells) = kind == .memory ? (rootAddressCells, rootSizeCells) : (reservedAddressCells, reservedSizeCells)
    guard addressCells >= 1, sizeCells >= 1 else { throw MemInitError(.deviceTreeBadCells, 0) }
    let entryBytes = 4 * (addressCells + sizeCells)
    var offset = 0
    while let start = property.cells(at: offset, count: addressCells),
      let size = property.cells(at: offset + 4 * addressCells, count: sizeCells)
    {
      offset += entryBytes
      let rangeEnd = try MemoryNodeReader.end(UInt(start), UInt(size))
      if kind == .memory {
        // RAM whole pages only: the start rounded up, the end rounded down.
        guard let first = Page.roundUp(UInt(start)) else { continue }
        let last = Page.roundDown(rangeEnd)
        if last > first {
          try memory.addRAM(start: first, size: last - first)
          summary.ramRanges += 1
        }
      } else if pendingCount < MemoryNodeReader.pendingCapacity {
        pending[pendingCount] = PhysicalRange(start: UInt(start), end: rangeEnd)
        pendingCount += 1
      }
    }
  }
}
