/// A range of physical addresses, `[start, end)`.
public struct PhysicalRange: Equatable, Sendable {
  /// The first address in the range.
  public var start: UInt
  /// One past the last address in the range.
  public var end: UInt

  /// `[start, end)`.
  /// - Complexity: O(1).
  public init(start: UInt, end: UInt) {
    self.start = start
    self.end = end
  }

  /// Bytes covered (0 when empty or reversed).
  public var bytes: UInt { end > start ? end - start : 0 }
  /// Whole pages covered (the range is page aligned where it is RAM).
  public var pages: Int { Int(bytes >> UInt(Page.shift)) }
  /// Whether the range covers no byte (`end <= start`).
  public var isEmpty: Bool { end <= start }

  /// Whether the two ranges share a byte.
  /// - Complexity: O(1).
  public func overlaps(_ other: PhysicalRange) -> Bool { start < other.end && other.start < end && !isEmpty && !other.isEmpty }

  /// Whether `address` lies inside.
  /// - Complexity: O(1).
  public func contains(_ address: UInt) -> Bool { address >= start && address < end }
}

/// Up to `PhysicalRanges.capacity` ranges in a fixed-size store (memInit runs before any
/// heap exists, so nothing here allocates).
public struct PhysicalRanges: Sendable {
  /// Most ranges held: at least the 64 RAM ranges firmware may report.
  public static let capacity = 64
  private var storage = InlineArray<64, PhysicalRange>(repeating: PhysicalRange(start: 0, end: 0))
  /// Ranges held, 0...`capacity`.
  public private(set) var count = 0

  /// An empty list.
  /// - Complexity: O(capacity).
  public init() {}

  /// Appends `range`; false (and nothing changes) when the list is full.
  /// - Complexity: O(1).
  @discardableResult
  public mutating func append(_ range: PhysicalRange) -> Bool {
    guard count < PhysicalRanges.capacity else { return false }
    storage[count] = range
    count += 1
    return true
  }

  /// Range `index`.
  /// - Precondition: `0 <= index < count`.
  /// - Complexity: O(1).
  public subscript(index: Int) -> PhysicalRange {
    get {
      precondition(index >= 0 && index < count, "range index out of range")
      return storage[index]
    }
    set {
      precondition(index >= 0 && index < count, "range index out of range")
      storage[index] = newValue
    }
  }

  /// Sorts the ranges by start (insertion sort: at most 64 of them).
  /// - Complexity: O(count²).
  public mutating func sort() {
    var i = 1
    while i < count {
      let item = storage[i]
      var j = i
      while j > 0 && storage[j - 1].start > item.start {
        storage[j] = storage[j - 1]
        j -= 1
      }
      storage[j] = item
      i += 1
    }
  }

  /// Σ pages.
  /// - Complexity: O(count).
  public var totalPages: Int {
    var total = 0
    for index in 0..<count { total += storage[index].pages }
    return total
  }
}
