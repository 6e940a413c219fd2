/// The size classes kmalloc serves from slabs: 16-byte steps up to 128, then four
/// classes per doubling up to `SlabClass.limit` (1 KiB):
///
///     16 32 48 64 80 96 112 128 | 160 192 224 256 | 320 384 448 512 | 640 768 896 1024
///
/// A request is rounded up to its class, so at most 1/5 of an object is unused (a
/// 129-byte request in a 160-byte object) and about 1/10 on average: the same as the
/// 16-byte header a TLSF block of that size carries, which slab objects do not have.
public enum SlabClass {
  /// The largest request served by a slab; larger ones go to the TLSF heap.
  public static let limit = 1024
  /// Number of classes.
  public static let count = 20
  /// Classes of 16-byte steps (16 ... 128).
  static let linearCount = 8
  /// log2 of the first size of the stepped part (128).
  static let linearShift = 7

  /// The class serving a request of `size` bytes.
  /// - Precondition: `0 <= size <= limit` (not checked: the fast path calls it).
  /// - Complexity: O(1), no table.
  @inline(__always)
  public static func index(forRequest size: Int) -> Int {
    if size <= 128 { return size <= 16 ? 0 : (size - 1) >> 4 }
    let s = size - 1
    let high = Int.bitWidth - 1 - s.leadingZeroBitCount
    return linearCount + (high - linearShift) * 4 + ((s >> (high - 2)) & 3)
  }

  /// The object size of class `index`.
  /// - Precondition: `0 <= index < count`.
  /// - Complexity: O(1).
  public static func objectSize(_ index: Int) -> Int {
    if index < linearCount { return 16 * (index + 1) }
    let step = index - linearCount
    let high = linearShift + step / 4
    return (1 << high) + (step % 4 + 1) << (high - 2)
  }
}
