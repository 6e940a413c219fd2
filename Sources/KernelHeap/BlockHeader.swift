/// The 16-byte header in front of every heap block, and the rules for reading it.
///
///     offset 0   sizeAndFlags: UInt64  block size in bytes (header included, multiple of 16) | flags
///     offset 8   prevSize:     UInt32  size of the physically previous block / 16 (0: first block)
///     offset 12  check:        UInt32  checkValue(address, sizeAndFlags, prevSize)
///     offset 16  payload (16-byte aligned). In a free block: nextFree, prevFree pointers.
///
/// `prevSize` is the boundary tag: it is kept exact for every block, so the left
/// neighbour is found in O(1) and a header can be cross-checked against its right
/// neighbour. Each arena ends with a sentinel header of size 0, so coalescing right
/// always finds a header and never runs off the end.
enum Block {
  static let headerSize = 16
  static let alignment = 16
  /// Header plus the two free-list links.
  static let minimumSize = 32

  /// On the free lists.
  static let flagFree: UInt64 = 1 << 0
  /// The physically previous block is free.
  static let flagPrevFree: UInt64 = 1 << 1
  /// End-of-arena marker (size 0).
  static let flagSentinel: UInt64 = 1 << 2
  static let flagMask: UInt64 = 0xF

  static let magic: UInt32 = 0x5AFE_4EA9

  /// Every byte of the header feeds a distinct byte lane of the check, so any
  /// single-byte change of the header is detected; the address term catches a header
  /// copied from elsewhere.
  @inline(__always)
  static func checkValue(_ block: UnsafeMutableRawPointer, _ sizeAndFlags: UInt64, _ prevSize: UInt32) -> UInt32 {
    let address = UInt(bitPattern: block)
    let low = UInt32(truncatingIfNeeded: sizeAndFlags)
    let high = UInt32(truncatingIfNeeded: sizeAndFlags >> 32)
    let place = UInt32(truncatingIfNeeded: address >> 4) ^ UInt32(truncatingIfNeeded: address >> 36)
    return magic ^ low ^ rotate(high, 8) ^ rotate(prevSize, 16) ^ rotate(place, 24)
  }

  @inline(__always)
  static func rotate(_ value: UInt32, _ bits: UInt32) -> UInt32 {
    (value << bits) | (value >> (32 - bits))
  }

  // MARK: Field access

  @inline(__always)
  static func word(_ block: UnsafeMutableRawPointer) -> UInt64 { block.load(as: UInt64.self) }

  @inline(__always)
  static func size(_ block: UnsafeMutableRawPointer) -> Int { Int(truncatingIfNeeded: word(block) & ~flagMask) }

  @inline(__always)
  static func isFree(_ block: UnsafeMutableRawPointer) -> Bool { word(block) & flagFree != 0 }

  @inline(__always)
  static func prevSize(_ block: UnsafeMutableRawPointer) -> Int {
    Int(block.load(fromByteOffset: 8, as: UInt32.self)) << 4
  }

  @inline(__always)
  static func storedCheck(_ block: UnsafeMutableRawPointer) -> UInt32 {
    block.load(fromByteOffset: 12, as: UInt32.self)
  }

  /// Whether the header's check value matches its contents and address.
  @inline(__always)
  static func isIntact(_ block: UnsafeMutableRawPointer) -> Bool {
    storedCheck(block) == checkValue(block, word(block), block.load(fromByteOffset: 8, as: UInt32.self))
  }

  /// Writes a whole header with a fresh check value.
  @inline(__always)
  static func write(_ block: UnsafeMutableRawPointer, size: Int, flags: UInt64, prevSize: Int) {
    let word = UInt64(truncatingIfNeeded: size) | flags
    let previous = UInt32(truncatingIfNeeded: prevSize >> 4)
    block.storeBytes(of: word, as: UInt64.self)
    block.storeBytes(of: previous, toByteOffset: 8, as: UInt32.self)
    block.storeBytes(of: checkValue(block, word, previous), toByteOffset: 12, as: UInt32.self)
  }

  // Headers that already exist are changed by difference: the check value is XOR-linear
  // in each field, so `check ^= f(old) ^ f(new)` keeps it right without recomputing it.
  // A header that was already corrupt therefore stays detectably corrupt instead of
  // being sealed with a fresh check, and the address term is not recomputed.

  /// Sets `block`'s size and flags, keeping its boundary tag.
  @inline(__always)
  static func setSize(_ block: UnsafeMutableRawPointer, _ size: Int, flags: UInt64) {
    amend(block, word: UInt64(truncatingIfNeeded: size) | flags, previous: block.load(fromByteOffset: 8, as: UInt32.self))
  }

  /// Rewrites `block`'s boundary tag: the size of the block before it and whether that
  /// block is free (size and other flags kept).
  @inline(__always)
  static func setPrevious(_ block: UnsafeMutableRawPointer, size previousSize: Int, free previousFree: Bool) {
    let newWord = (word(block) & ~flagPrevFree) | (previousFree ? flagPrevFree : 0)
    amend(block, word: newWord, previous: UInt32(truncatingIfNeeded: previousSize >> 4))
  }

  /// Sets the free flag of a header that a merge swallows, so its old payload pointer
  /// reads as a double free.
  @inline(__always)
  static func markSwallowed(_ block: UnsafeMutableRawPointer) {
    setSize(block, size(block), flags: flags(block) | flagFree)
  }

  @inline(__always)
  private static func amend(_ block: UnsafeMutableRawPointer, word newWord: UInt64, previous newPrevious: UInt32) {
    let wordChange = word(block) ^ newWord
    let previousChange = block.load(fromByteOffset: 8, as: UInt32.self) ^ newPrevious
    let delta = UInt32(truncatingIfNeeded: wordChange) ^ rotate(UInt32(truncatingIfNeeded: wordChange >> 32), 8)
      ^ rotate(previousChange, 16)
    block.storeBytes(of: newWord, as: UInt64.self)
    block.storeBytes(of: newPrevious, toByteOffset: 8, as: UInt32.self)
    block.storeBytes(of: storedCheck(block) ^ delta, toByteOffset: 12, as: UInt32.self)
  }

  @inline(__always)
  static func flags(_ block: UnsafeMutableRawPointer) -> UInt64 { word(block) & flagMask }

  /// The physically next block (or the sentinel).
  @inline(__always)
  static func next(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer { block + size(block) }

  @inline(__always)
  static func payload(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer { block + headerSize }

  @inline(__always)
  static func header(ofPayload payload: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer { payload - headerSize }

  // Free-list links live in the payload of free blocks.
  @inline(__always)
  static func nextFree(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
    block.load(fromByteOffset: 16, as: UnsafeMutableRawPointer?.self)
  }
  @inline(__always)
  static func prevFree(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
    block.load(fromByteOffset: 24, as: UnsafeMutableRawPointer?.self)
  }
  @inline(__always)
  static func setNextFree(_ block: UnsafeMutableRawPointer, _ link: UnsafeMutableRawPointer?) {
    block.storeBytes(of: link, toByteOffset: 16, as: UnsafeMutableRawPointer?.self)
  }
  @inline(__always)
  static func setPrevFree(_ block: UnsafeMutableRawPointer, _ link: UnsafeMutableRawPointer?) {
    block.storeBytes(of: link, toByteOffset: 24, as: UnsafeMutableRawPointer?.self)
  }
}
