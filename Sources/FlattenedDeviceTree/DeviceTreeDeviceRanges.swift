// The MMIO ranges a kernel maps as device memory: every device node's `reg` entries,
// translated to the CPU's physical address space through each ancestor bus's `ranges`,
// as Linux's of_translate_address does. One walk of the structure block with a fixed
// stack of the nodes on the path from the root; nothing is allocated.

extension FlattenedDeviceTree {
  /// The deepest node level `forEachDeviceRange` reads (the root is level 1): nodes below
  /// it are skipped.
  static let deviceRangeDepthLimit = 16

  /// Calls `body(start, end)` (physical, end exclusive) for every `reg` entry of every
  /// node that describes a device, translated to the root's (CPU) physical address
  /// space through each ancestor's `ranges`, in the order the tree lists the nodes.
  ///
  /// - A node's `reg` entries are read with its parent's `#address-cells` (1 or 2) and
  ///   `#size-cells` (0 to 2); an absent property counts as 2 and 1 (the devicetree
  ///   specification's defaults). Under other values (PCI's 3 address cells, say) the
  ///   node gives nothing. A partial entry at the end of `reg` is ignored.
  /// - Each ancestor bus below the root translates the entry's start address: an empty
  ///   `ranges` is the identity; otherwise the entry (child address in the bus's
  ///   `#address-cells`, parent address in its parent's, size in the bus's
  ///   `#size-cells`) whose window holds the address moves it. An address in no window,
  ///   a bus without `ranges` (its children are not memory mapped), a `ranges` under
  ///   cells this reader does not take, or a translation past 2^64 leaves the entry out.
  ///   Only the start is translated, as in Linux: the size is kept as the node gives it.
  /// - Left out with their subtrees: the root's own `reg`; `/cpus`, `/reserved-memory`,
  ///   `/chosen` and `/aliases` (with or without a unit address); memory nodes (any node
  ///   with `device_type = "memory"`, and a child of the root named `memory` or
  ///   `memory@…`, as MemInit reads RAM); nodes whose `status` is present and neither
  ///   "okay" nor "ok"; nodes deeper than level 16.
  /// - Left out as entries: size 0, and an end past 2^64.
  ///
  /// Ranges are given as the nodes list them: they may overlap or repeat (two nodes can
  /// name the same registers), and are not sorted or merged.
  ///
  /// The whole structure block is walked once before `body` is first called, so a
  /// malformed tree gives its error without any range.
  /// - Throws: `DeviceTreeError` from the walk (`truncated`, `badStructure`).
  /// - Complexity: O(structure block size + reg entries × the ancestors' `ranges` bytes).
  public func forEachDeviceRange(_ body: (_ start: UInt64, _ end: UInt64) -> Void) throws(DeviceTreeError) {
    var check = walk()
    while try check.next() != nil {}

    // The nodes from the root down to the walker's depth (16: deviceRangeDepthLimit).
    var path = InlineArray<16, DeviceRangeNode>(repeating: DeviceRangeNode())
    let limit = FlattenedDeviceTree.deviceRangeDepthLimit
    var walker = walk()
    while let token = try walker.next() {
      let depth = walker.depth
      switch token {
      case .beginNode(let name):
        // The parent's properties all came before this child: its entries can go now.
        if depth >= 2 && depth - 1 <= limit { close(&path, depth: depth - 1, body) }
        guard depth <= limit else { continue }
        var node = DeviceRangeNode()
        if depth >= 2 && path[depth - 2].skipped {
          node.skipped = true
        } else if depth == 2 {
          node.skipped = name.isNode("cpus") || name.isNode("reserved-memory") || name.isNode("chosen")
            || name.isNode("aliases")
          node.isMemory = name.isNode("memory")
        }
        path[depth - 1] = node
      case .endNode:
        // The node at depth + 1 ends.
        if depth + 1 <= limit { close(&path, depth: depth + 1, body) }
      case .property(let property):
        guard depth <= limit else { continue }
        let name = property.name
        if name.equals("#address-cells") {
          path[depth - 1].addressCells = property.cell.map { Int($0) } ?? -1
        } else if name.equals("#size-cells") {
          path[depth - 1].sizeCells = property.cell.map { Int($0) } ?? -1
        } else if name.equals("ranges") {
          path[depth - 1].ranges = property.value
        } else if name.equals("reg") {
          path[depth - 1].reg = property.value
        } else if name.equals("status") {
          path[depth - 1].available = property.isString("okay") || property.isString("ok")
        } else if name.equals("device_type") {
          if property.isString("memory") { path[depth - 1].isMemory = true }
        }
      }
    }
  }

  /// Ends the property list of the node at `depth` (once): marks it skipped when it is
  /// unavailable or memory, else hands its translated `reg` entries to `body`. A
  /// property the tree puts after a child node (the specification does not allow it)
  /// comes too late for the node's own entries and counts only for later children.
  /// - Complexity: O(its reg entries × the ancestors' `ranges` bytes).
  private func close(
    _ path: inout InlineArray<16, DeviceRangeNode>, depth: Int, _ body: (_ start: UInt64, _ end: UInt64) -> Void
  ) {
    guard (1...FlattenedDeviceTree.deviceRangeDepthLimit).contains(depth), path[depth - 1].open else { return }
    path[depth - 1].open = false
    if !path[depth - 1].available || path[depth - 1].isMemory { path[depth - 1].skipped = true }
    let node = path[depth - 1]
    guard depth >= 2, !node.skipped, let reg = node.reg else { return }
    let parent = path[depth - 2]
    let addressCells = parent.addressCells, sizeCells = parent.sizeCells
    guard (1...2).contains(addressCells), (0...2).contains(sizeCells) else { return }
    let stride = 4 * (addressCells + sizeCells)
    var offset = 0
    while offset + stride <= reg.count {
      defer { offset += stride }
      guard let address = Self.cells(reg, at: offset, count: addressCells),
        let size = Self.cells(reg, at: offset + 4 * addressCells, count: sizeCells), size > 0,
        let start = Self.translate(address, below: depth - 1, path)
      else { continue }
      let (end, overflow) = start.addingReportingOverflow(size)
      guard !overflow else { continue }
      body(start, end)
    }
  }

  /// `address` in the address space of the node at `depth`'s children, in the root's:
  /// moved through the `ranges` of that node and each ancestor below the root; nil when
  /// one of them does not map it.
  /// - Complexity: O(the `ranges` bytes of the nodes at depths 2 ... `depth`).
  private static func translate(_ address: UInt64, below depth: Int, _ path: borrowing InlineArray<16, DeviceRangeNode>)
    -> UInt64?
  {
    var address = address
    var bus = depth
    while bus >= 2 {
      defer { bus -= 1 }
      guard let ranges = path[bus - 1].ranges else { return nil }
      if ranges.count == 0 { continue }
      let childCells = path[bus - 1].addressCells, parentCells = path[bus - 2].addressCells
      let sizeCells = path[bus - 1].sizeCells
      guard (1...2).contains(childCells), (1...2).contains(parentCells), (0...2).contains(sizeCells) else { return nil }
      let stride = 4 * (childCells + parentCells + sizeCells)
      var offset = 0
      var moved: UInt64? = nil
      while moved == nil && offset + stride <= ranges.count {
        defer { offset += stride }
        guard let child = cells(ranges, at: offset, count: childCells),
          let parent = cells(ranges, at: offset + 4 * childCells, count: parentCells),
          let size = cells(ranges, at: offset + 4 * (childCells + parentCells), count: sizeCells),
          address >= child, address - child < size
        else { continue }
        let (translated, overflow) = parent.addingReportingOverflow(address - child)
        guard !overflow else { return nil }
        moved = translated
      }
      guard let moved else { return nil }
      address = moved
    }
    return address
  }

  /// `count` big-endian cells (0 to 2; 0 is the number 0) from byte `offset` of `value`
  /// as one number, high cell first; nil when they do not lie inside `value`.
  /// - Complexity: O(1).
  private static func cells(_ value: UnsafeRawBufferPointer, at offset: Int, count: Int) -> UInt64? {
    guard (0...2).contains(count), offset >= 0, offset <= value.count - 4 * count else { return nil }
    var number: UInt64 = 0
    for index in 0..<count { number = number << 32 | UInt64(word(value, offset + 4 * index)) }
    return number
  }
}

/// What `forEachDeviceRange` keeps for one node on the path from the root.
struct DeviceRangeNode {
  /// Its `#address-cells` (its children's `reg` addresses, its `ranges`' child
  /// addresses); 2 when absent, -1 when not one cell.
  var addressCells = 2
  /// Its `#size-cells`; 1 when absent, -1 when not one cell.
  var sizeCells = 1
  /// Its `ranges` value; nil without the property.
  var ranges: UnsafeRawBufferPointer? = nil
  /// Its `reg` value; nil without the property.
  var reg: UnsafeRawBufferPointer? = nil
  /// Its `status` is absent, "okay" or "ok".
  var available = true
  /// It is a memory node (by `device_type`, or a child of the root by its name).
  var isMemory = false
  /// It and its subtree give no ranges.
  var skipped = false
  /// Its properties may still come (no child begun, not ended).
  var open = true
}
