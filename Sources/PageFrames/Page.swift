/// Geometry of a physical page, and the only place page rounding is written.
public enum Page {
  /// Bytes in a page.
  public static let size = 4096
  /// log2(size).
  public static let shift = 12
  /// Largest buddy order: runs of up to 2^maxOrder pages (4 MiB).
  public static let maxOrder = 10
  /// Pages in the largest buddy run.
  public static let maxOrderPages = 1 << maxOrder
  /// The bits below a page boundary.
  public static let offsetMask = UInt(size - 1)

  /// `address` rounded down to a page boundary.
  /// - Complexity: O(1).
  @inline(__always)
  public static func roundDown(_ address: UInt) -> UInt { address & ~offsetMask }

  /// `address` rounded up to a page boundary, or nil when that would pass 2^64.
  /// - Complexity: O(1).
  @inline(__always)
  public static func roundUp(_ address: UInt) -> UInt? {
    let (sum, overflow) = address.addingReportingOverflow(offsetMask)
    return overflow ? nil : roundDown(sum)
  }

  /// Whether `address` is a page boundary.
  /// - Complexity: O(1).
  @inline(__always)
  public static func isAligned(_ address: UInt) -> Bool { address & offsetMask == 0 }

  /// Pages needed to hold `bytes` bytes (`bytes >= 0`, below `Int.max - size`).
  /// - Complexity: O(1).
  @inline(__always)
  public static func count(forBytes bytes: Int) -> Int { (bytes + size - 1) >> shift }

  /// The smallest order whose run holds `pages` pages (pages >= 1); may exceed maxOrder.
  /// - Complexity: O(1).
  @inline(__always)
  public static func order(forPages pages: Int) -> Int {
    pages <= 1 ? 0 : Int.bitWidth - (pages - 1).leadingZeroBitCount
  }
}
