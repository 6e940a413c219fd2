// A flattened device tree (devicetree.org's DTB format, versions 16 and 17) checked at
// its header and read without trusting any offset in it. Portable and dependency-free:
// the kernel hands it the bytes firmware left in RAM, host tests and the fuzzer bytes
// they built, and it compiles as host Swift and as Embedded Swift from this one source.

/// Why a blob is not a device tree this reader accepts. Every malformed blob ends in one
/// of these, never in a trap or a read outside the blob.
public enum DeviceTreeError: Error, Equatable, Sendable {
  /// The first word is not 0xD00DFEED.
  case badMagic
  /// Version below 16, or last compatible version above 17.
  case badVersion
  /// The blob is shorter than its header says, or a block, string, property or entry
  /// runs past the bytes it must lie in.
  case truncated
  /// An unknown token, an end-node without a node, a property outside every node, or
  /// the end token inside a node.
  case badStructure
}

/// A device tree blob whose header has been checked: the header's blocks (reservation
/// map, structure, strings) all lie inside `bytes`. Reading the blocks checks the rest.
public struct FlattenedDeviceTree {
  /// The header's first word.
  public static let magic: UInt32 = 0xD00D_FEED
  /// The header's size: ten 32-bit fields.
  public static let headerBytes = 40

  /// The tree's bytes: exactly the header's `totalsize`.
  public let bytes: UnsafeRawBufferPointer
  /// The structure block's byte range in `bytes`.
  let structure: Range<Int>
  /// The strings block's byte range in `bytes`.
  let strings: Range<Int>
  /// Where the memory reservation map starts in `bytes` (8-byte aligned).
  let reserveMapOffset: Int

  /// The header's `totalsize`: bytes the tree occupies.
  public var totalSize: Int { bytes.count }

  /// The total size the header in `header` gives, or nil when its first 8 bytes are not
  /// a device tree header. For finding out how many bytes to hand to `init(blob:)`.
  /// - Complexity: O(1).
  public static func totalSize(ofHeader header: UnsafeRawBufferPointer) -> Int? {
    guard header.count >= 8, word(header, 0) == magic else { return nil }
    return Int(word(header, 4))
  }

  /// Checks the header of the tree at the start of `blob`, which must hold at least the
  /// header's `totalsize` bytes (more are ignored).
  /// - Throws: `DeviceTreeError`, checked in this order: `truncated` (fewer than 40
  ///   bytes), `badMagic`, `badVersion`, `truncated` (`totalsize` below 40 or above
  ///   `blob.count`, a block outside it, or a misaligned structure block or reservation
  ///   map).
  /// - Complexity: O(1).
  public init(blob: UnsafeRawBufferPointer) throws(DeviceTreeError) {
    guard blob.count >= FlattenedDeviceTree.headerBytes else { throw .truncated }
    guard FlattenedDeviceTree.word(blob, 0) == FlattenedDeviceTree.magic else { throw .badMagic }
    let field = { (index: Int) -> Int in Int(FlattenedDeviceTree.word(blob, index * 4)) }
    guard field(5) >= 16, field(6) <= 17 else { throw .badVersion }
    let total = field(1)
    guard total >= FlattenedDeviceTree.headerBytes, total <= blob.count else { throw .truncated }
    let structOffset = field(2), stringsOffset = field(3), reserveMapOffset = field(4)
    let stringsSize = field(8), structSize = field(9)
    // Fields are 32-bit, so these sums cannot overflow an Int of 64 bits.
    guard structOffset + structSize <= total, stringsOffset + stringsSize <= total, reserveMapOffset + 16 <= total,
      reserveMapOffset & 7 == 0, structOffset & 3 == 0
    else { throw .truncated }
    bytes = UnsafeRawBufferPointer(rebasing: blob[0..<total])
    structure = structOffset..<(structOffset + structSize)
    strings = stringsOffset..<(stringsOffset + stringsSize)
    self.reserveMapOffset = reserveMapOffset
  }

  /// The `/memreserve/` entries, in the order the map lists them.
  /// - Complexity: O(1); each `next()` O(1).
  public func memoryReservations() -> MemoryReservations {
    MemoryReservations(bytes: bytes, offset: reserveMapOffset)
  }

  /// The structure block's tokens from the root node on.
  /// - Complexity: O(1); walking every token O(structure block size).
  public func walk() -> DeviceTreeWalker {
    DeviceTreeWalker(bytes: bytes, structure: structure, strings: strings)
  }

  /// The big-endian word at `offset`.
  /// - Precondition: `offset + 4 <= bytes.count` (every caller checks it first).
  static func word(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
    UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
  }
}

/// The memory reservation map: (address, size) pairs of 64 bits, ended by a pair of
/// zeros. An iterator that checks each entry against the blob.
public struct MemoryReservations {
  let bytes: UnsafeRawBufferPointer
  var offset: Int

  /// The next entry, or nil after the terminating pair of zeros.
  /// - Throws: `DeviceTreeError.truncated` for an entry past the end of the blob.
  /// - Complexity: O(1).
  public mutating func next() throws(DeviceTreeError) -> (address: UInt64, size: UInt64)? {
    guard offset + 16 <= bytes.count else { throw .truncated }
    let address = UInt64(FlattenedDeviceTree.word(bytes, offset)) << 32 | UInt64(FlattenedDeviceTree.word(bytes, offset + 4))
    let size = UInt64(FlattenedDeviceTree.word(bytes, offset + 8)) << 32 | UInt64(FlattenedDeviceTree.word(bytes, offset + 12))
    if address == 0 && size == 0 { return nil }
    offset += 16
    return (address, size)
  }
}
