import FlattenedDeviceTree
import PageFrames

/// A flattened device tree, read for what memory set-up needs: every memory node's
/// every `reg` entry (RAM; a child of the root named `memory` or `memory@…`, or with
/// `device_type = "memory"`), `/memreserve/` entries, every `reg` entry of every
/// `/reserved-memory` child (with `no-map` recorded), the initrd named in `/chosen`, and
/// the blob itself. No fixed table limits what is read: each node's `reg` is taken
/// whole when the node ends.
///
/// Built on `FlattenedDeviceTree`'s walker, which checks every read against the blob: a
/// bad or truncated blob is a `MemInitError`, never a read outside it.
public struct DeviceTree {
  /// The header's size: ten 32-bit fields.
  public static let headerBytes = FlattenedDeviceTree.headerBytes

  /// The checked tree, for readers of other nodes (`cores()`).
  public let flattened: FlattenedDeviceTree
  /// Where the blob lies in physical memory (what gets reserved as `.deviceTree`).
  public let physicalAddress: UInt
  /// The header's `totalsize`: bytes the tree occupies.
  public var totalSize: Int { flattened.totalSize }

  /// The header's total size, read from the first 8 bytes, or nil when they are not a
  /// device tree header. For finding out how many bytes to hand to `init`.
  /// - Complexity: O(1).
  public static func totalSize(ofHeader bytes: UnsafeRawBufferPointer) -> Int? {
    FlattenedDeviceTree.totalSize(ofHeader: bytes)
  }

  /// Checks the header of the blob in `blob` (which must hold at least `totalsize`
  /// bytes) found at `physicalAddress`.
  /// - Throws: `MemInitError` at `physicalAddress`: `deviceTreeBadMagic`,
  ///   `deviceTreeBadVersion` (version below 16, or last compatible version above 17),
  ///   `deviceTreeTruncated` (the blob is shorter than its header says, or a block lies
  ///   outside it), `deviceTreeOutsideAddressSpace` (`physicalAddress + totalsize`
  ///   passes or ends at 2^64: the blob's end has no address).
  /// - Complexity: O(1).
  public init(blob: UnsafeRawBufferPointer, physicalAddress: UInt) throws(MemInitError) {
    do {
      flattened = try FlattenedDeviceTree(blob: blob)
    } catch {
      throw DeviceTree.failure(error, physicalAddress)
    }
    let (end, wrapped) = physicalAddress.addingReportingOverflow(UInt(flattened.totalSize))
    guard !wrapped, end != 0 else { throw MemInitError(.deviceTreeOutsideAddressSpace, physicalAddress) }
    self.physicalAddress = physicalAddress
    physicalEnd = end
  }

  /// One past the blob's last byte: `physicalAddress + totalSize`, checked by `init`.
  public let physicalEnd: UInt

  /// The `MemInitError` for a reader's `DeviceTreeError` in the tree at `address`.
  static func failure(_ error: DeviceTreeError, _ address: UInt) -> MemInitError {
    switch error {
    case .badMagic: return MemInitError(.deviceTreeBadMagic, address)
    case .badVersion: return MemInitError(.deviceTreeBadVersion, address)
    case .truncated, .badStructure: return MemInitError(.deviceTreeTruncated, address)
    }
  }

  /// What `describe` found, for the boot banner.
  public struct Summary: Sendable {
    /// `reg` entries of memory nodes added as RAM (those with at least one whole
    /// page; `BootMemory` then merges those that touch).
    public var ramRanges = 0
    /// Entries of the blob's `/memreserve/` block reserved as `.firmwareReserved`
    /// (entries of size 0 reserve nothing and are not counted).
    public var memoryReservations = 0
    /// `/reserved-memory` child ranges without `no-map`, reserved as `.firmwareReserved`
    /// (size 0 not counted).
    public var reservedMemory = 0
    /// `/reserved-memory` child ranges with `no-map`, reserved as `.noMap` (size 0 not
    /// counted).
    public var noMap = 0
    /// Whether /chosen named an initrd, reserved as `.initrd`.
    public var initrd = false
  }

  /// Adds the tree's RAM ranges to `memory` and reserves the blob, `/memreserve/`
  /// entries, `/reserved-memory` children (`.noMap` with `no-map`, else
  /// `.firmwareReserved`) and the initrd (`.initrd`). RAM ranges are rounded inwards to
  /// pages; reservations keep their exact bytes (they cover every page they touch).
  ///
  /// - Throws: `MemInitError`: `deviceTreeTruncated` for anything that runs past its
  ///   block or a malformed structure, `deviceTreeBadCells` for cell counts out of
  ///   range, `ramWraps` for a RAM `reg` entry past 2^64, `reservationWraps` for a
  ///   reservation's, and `BootMemory`'s reasons (too many ranges, pages or
  ///   reservations: refused, never dropped).
  ///   `memory` may hold part of the tree's content then.
  /// - Complexity: O(blob size).
  public func describe(into memory: inout BootMemory) throws(MemInitError) -> Summary {
    var reader = MemoryNodeReader(treeAddress: physicalAddress)
    try memory.reserve(start: physicalAddress, end: physicalEnd, as: .deviceTree)
    var reservations = flattened.memoryReservations()
    while let entry = try step({ () throws(DeviceTreeError) in try reservations.next() }) {
      let start = UInt(entry.address)
      try memory.reserve(start: start, end: try MemoryNodeReader.end(start, UInt(entry.size), .reservationWraps), as: .firmwareReserved)
      if entry.size > 0 { reader.summary.memoryReservations += 1 }
    }
    var walker = flattened.walk()
    while let token = try step({ () throws(DeviceTreeError) in try walker.next() }) {
      try reader.read(token, depth: walker.depth, into: &memory)
    }
    return reader.summary
  }

  /// Firmware's RAM total, counted straight from the tree's memory nodes' `reg` values
  /// (their raw sizes, not rounded to pages, summed as given) by a walk of its own that
  /// shares nothing with `describe` and `BootMemory`: the independent figure the boot map
  /// is checked against, and what QEMU's `-m` says on virt.
  ///
  /// - Throws: `MemInitError`: the walker's reasons as in `describe`,
  ///   `deviceTreeBadCells` for a memory node's `reg` under cells of 0 or above 2,
  ///   `tooManyPages` when the sum passes 2^64.
  /// - Complexity: O(blob size).
  public func reportedRAMBytes() throws(MemInitError) -> UInt {
    var walker = flattened.walk()
    var addressCells = 2, sizeCells = 1
    var isMemory = false
    var disabled = false
    var reg: DeviceTreeProperty? = nil
    var total: UInt = 0
    while let token = try step({ () throws(DeviceTreeError) in try walker.next() }) {
      switch token {
      case .beginNode(let name):
        if walker.depth == 2 {
          isMemory = name.isNode("memory")
          disabled = false
          reg = nil
        }
      case .property(let property):
        if walker.depth == 1, property.name.equals("#address-cells"), let cell = property.cell { addressCells = Int(cell) }
        if walker.depth == 1, property.name.equals("#size-cells"), let cell = property.cell { sizeCells = Int(cell) }
        if walker.depth == 2, property.name.equals("device_type"), property.isString("memory") { isMemory = true }
        if walker.depth == 2, property.name.equals("reg") { reg = property }
        if walker.depth == 2, property.name.equals("status") { disabled = !DeviceTree.isAvailable(status: property) }
      case .endNode:
        guard walker.depth == 1, isMemory, !disabled, let reg else { continue }
        guard (1...2).contains(addressCells), (1...2).contains(sizeCells) else {
          throw MemInitError(.deviceTreeBadCells, physicalAddress)
        }
        var offset = 4 * addressCells
        while let size = reg.cells(at: offset, count: sizeCells) {
          let (sum, overflow) = total.addingReportingOverflow(UInt(size))
          guard !overflow else { throw MemInitError(.tooManyPages, physicalAddress) }
          total = sum
          offset += 4 * (addressCells + sizeCells)
        }
        isMemory = false
      }
    }
    return total
  }

  /// Whether a node's `status` property says it is there for the kernel: "okay", or
  /// "ok" as older trees write it. Any other value ("disabled", "reserved", "fail") is
  /// not, as in Linux's `of_device_is_available`.
  /// - Complexity: O(1).
  static func isAvailable(status: DeviceTreeProperty) -> Bool {
    status.isString("okay") || status.isString("ok")
  }

  /// `read()`, its `DeviceTreeError` as this tree's `MemInitError`.
  private func step<T>(_ read: () throws(DeviceTreeError) -> T) throws(MemInitError) -> T {
    do {
      return try read()
    } catch {
      throw DeviceTree.failure(error, physicalAddress)
    }
  }
}
