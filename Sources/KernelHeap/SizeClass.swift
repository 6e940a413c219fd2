/// The two-level size index (TLSF): a first level per power of two and 16 linear
/// second-level classes inside each. Sizes below 256 map one class per 16 bytes, so
/// small classes are exact.
enum SizeClass {
  static let secondLevelLog2 = 4
  static let secondLevelCount = 1 << secondLevelLog2
  /// Sizes below this share first level 0 (linear classes of 16 bytes).
  static let smallLimit = secondLevelCount * Block.alignment  // 256
  static let smallLimitLog2 = 8
  /// First levels: sizes up to 2^(smallLimitLog2 + firstLevelCount - 1) - 1 (8 GiB).
  static let firstLevelCount = 26
  static let classCount = firstLevelCount * secondLevelCount
  /// Largest block the index can hold.
  static let maximumBlockSize = (1 << (smallLimitLog2 + firstLevelCount - 1)) - Block.alignment
  /// When a rounded-up search finds nothing, this many blocks of the request's own
  /// class are examined for one that fits: a bounded best-effort scan, O(1).
  static let fallbackScanLimit = 16

  /// The class holding blocks of exactly `size` bytes. `size` is a multiple of 16.
  @inline(__always)
  static func index(of size: Int) -> (first: Int, second: Int) {
    if size < smallLimit { return (0, size >> 4) }
    let log2 = (Int.bitWidth - 1) - size.leadingZeroBitCount
    let second = (size >> (log2 - secondLevelLog2)) & (secondLevelCount - 1)
    return (log2 - smallLimitLog2 + 1, second)
  }

  /// The first class whose every block holds `size` bytes: `size` rounded up to the
  /// next class boundary ("good fit": within one class of best fit).
  @inline(__always)
  static func searchIndex(for size: Int) -> (first: Int, second: Int) {
    if size < smallLimit { return (0, size >> 4) }
    let log2 = (Int.bitWidth - 1) - size.leadingZeroBitCount
    let rounded = size + (1 << (log2 - secondLevelLog2)) - 1
    return index(of: rounded)
  }
}
