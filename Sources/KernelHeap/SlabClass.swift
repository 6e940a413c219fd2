/// The size classes kmalloc serves from slabs: 16-byte steps up to 256, then eight
/// classes per doubling up to `SlabClass.limit` (4 KiB):
///
///     16 32 48 ... 240 256 | 288 320 ... 480 512 | 576 640 ... 1024 | 1152 ... 2048 |
///     2304 2560 2816 3072 3328 3584 3840 4096
///
/// A request is rounded up to its class: at most 15 bytes are unused up to 256, and at
/// most an eighth of the object above (257 in 288), about a sixteenth on average. A
/// TLSF block of those sizes carries a 16-byte header plus its own rounding to 16,
/// which slab objects do not have.
public enum SlabClass {
  /// The largest request served by a slab; larger ones go to the TLSF heap.
  public static let limit = 4096
  /// Number of classes.
  public static let count = 48
  /// Classes of 16-byte steps (16 ... 256).
  static let linearCount = 16
  /// log2 of the first size of the stepped part (256).
  static let linearShift = 8
  /// log2 of the classes per doubling above 256.
  static let stepsLog2 = 3

  /// The class serving a request of `size` bytes.
  /// - Precondition: `0 <= size <= limit` (not checked).
  /// - Complexity: O(1), arithmetic; kmalloc's fast path reads a heap's copy of
  ///   `granuleTable(scale:)` instead (one load against about ten instructions).
  @inline(__always)
  public static func index(forRequest size: Int) -> Int {
    if size <= 256 { return size <= 16 ? 0 : (size &- 1) >> 4 }
    let s = size &- 1
    let high = Int.bitWidth &- 1 &- s.leadingZeroBitCount
    return linearCount &+ (high &- linearShift) << stepsLog2 &+ ((s >> (high &- stepsLog2)) & (1 << stepsLog2 - 1))
  }

  /// Requests are rounded up to 16-byte granules; every class size is a multiple of 16,
  /// so all requests of one granule share a class. Granules 0 ... `limit` / 16.
  static let granules = limit / 16 + 1

  /// The class of every granule (`index(forRequest: granule * 16)`) times `scale`: the
  /// fast path's lookup, one load instead of the arithmetic of `index`. Each heap keeps
  /// a copy in its control block, scaled to its caches' byte offsets in a CPU slot.
  /// - Precondition: `count * scale <= 65536` (every product fits 16 bits).
  /// - Complexity: O(granules).
  static func granuleTable(scale: Int) -> InlineArray<257, UInt16> {
    InlineArray { granule in UInt16(truncatingIfNeeded: index(forRequest: granule &* 16) &* scale) }
  }

  /// The object size of class `index`.
  /// - Precondition: `0 <= index < count`.
  /// - Complexity: O(1).
  public static func objectSize(_ index: Int) -> Int {
    if index < linearCount { return 16 * (index + 1) }
    let step = index - linearCount
    let high = linearShift + step >> stepsLog2
    return (1 << high) + (step & (1 << stepsLog2 - 1) + 1) << (high - stepsLog2)
  }
}
