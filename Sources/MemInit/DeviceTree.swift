import FlattenedDeviceTree
import PageFrames

/// A flattened device tree, read for what memory set-up needs: every `/memory` node's
/// every `reg` entry (RAM), `/memreserve/` entries, every `/reserved-memory` child (with
/// `no-map` recorded), the initrd named in `/chosen`, and the blob itself.
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
  ///   outside it).
  /// - Complexity: O(1).
  public init(blob: UnsafeRawBufferPointer, physicalAddress: UInt) throws(MemInitError) {
    do {
      flattened = try FlattenedDeviceTree(blob: blob)
    } catch {
      throw DeviceTree.failure(error, physicalAddress)
    }
    self.physicalAddress = physicalAddress
  }

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
    /// RAM ranges added from /memory nodes (those with at least one whole page).
    public var ramRanges = 0
    /// Entries of the blob's `/memreserve/` block, reserved as `.firmwareReserved`.
    public var memoryReservations = 0
    /// `/reserved-memory` child ranges without `no-map`, reserved as `.firmwareReserved`.
    public var reservedMemory = 0
    /// `/reserved-memory` child ranges with `no-map`, reserved as `.noMap`.
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
  ///   range, and `BootMemory`'s reasons (overlapping RAM, too many ranges, ...).
  ///   `memory` may hold part of the tree's content then.
  /// - Complexity: O(blob size).
  public func describe(into memory: inout BootMemory) throws(MemInitError) -> Summary {
    var reader = MemoryNodeReader(treeAddress: physicalAddress)
    try memory.reserve(start: physicalAddress, end: physicalAddress + UInt(totalSize), as: .deviceTree)
    var reservations = flattened.memoryReservations()
    while let entry = try step({ () throws(DeviceTreeError) in try reservations.next() }) {
      let start = UInt(entry.address)
      try memory.reserve(start: start, end: try MemoryNodeReader.end(start, UInt(entry.size)), as: .firmwareReserved)
      reader.summary.memoryReservations += 1
    }
    var walker = flattened.walk()
    while let token = try step({ () throws(DeviceTreeError) in try walker.next() }) {
      try reader.read(token, depth: walker.depth, into: &memory)
    }
    return reader.summary
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
