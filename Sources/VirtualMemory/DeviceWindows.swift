import PageFrames

/// MMIO windows from the device tree and the board, page aligned, sorted and merged,
/// kept out of RAM, below the limit the kernel map's tables translate (the map is the
/// identity). Fixed capacity: past it a new window is merged into its nearest neighbour
/// (mapping the gap between them as device memory too).
public struct DeviceWindows: Sendable {
  /// Most windows kept apart.
  public static let capacity = 48
  private var storage = InlineArray<48, PhysicalRange>(repeating: PhysicalRange(start: 0, end: 0))
  /// Windows held, sorted by start, none touching another.
  public private(set) var count = 0
  /// One past the highest address a window may reach: the kernel map's
  /// `TranslationFormat.addressLimit`.
  public let limit: UInt

  /// No windows; ranges reaching past `limit` will be left out.
  /// - Complexity: O(capacity).
  public init(limit: UInt) { self.limit = limit }

  /// Window `index` (`0 ..< count`).
  /// - Complexity: O(1).
  public subscript(index: Int) -> PhysicalRange { storage[index] }

  /// Adds `[start, end)` rounded out to pages (nothing for an empty or wrapping range, or
  /// one reaching past `limit`), merged with every window it overlaps or touches.
  /// - Complexity: O(count).
  public mutating func add(start: UInt64, end: UInt64) {
    let pageMask = UInt64(Page.size - 1)
    guard start < end, end <= UInt64(limit) else { return }
    var low = UInt(start & ~pageMask)
    var high = UInt((end + pageMask) & ~pageMask)
    // Take out every window that overlaps or touches [low, high), widening it.
    var index = 0
    while index < count {
      let window = storage[index]
      if window.start <= high && low <= window.end {
        low = min(low, window.start)
        high = max(high, window.end)
        remove(at: index)
      } else {
        index += 1
      }
    }
    if count == DeviceWindows.capacity {
      // Full: widen the nearest window to take this one in, and add that instead.
      var nearest = 0
      var gap = UInt.max
      for candidate in 0..<count {
        let window = storage[candidate]
        let distance = window.end < low ? low - window.end : window.start - high
        if distance < gap {
          gap = distance
          nearest = candidate
        }
      }
      let window = storage[nearest]
      remove(at: nearest)
      add(start: UInt64(min(low, window.start)), end: UInt64(max(high, window.end)))
      return
    }
    var slot = count
    while slot > 0 && storage[slot - 1].start > low {
      storage[slot] = storage[slot - 1]
      slot -= 1
    }
    storage[slot] = PhysicalRange(start: low, end: high)
    count += 1
  }

  /// These windows rounded out to multiples of `alignment` (a power of two, at least a
  /// page) and merged again: fewer, larger windows that 2 MiB blocks can map without a
  /// level-3 table each.
  /// - Complexity: O(count²).
  public func rounded(to alignment: UInt) -> DeviceWindows {
    var result = DeviceWindows(limit: limit)
    let mask = UInt64(alignment - 1)
    for index in 0..<count {
      let window = storage[index]
      let end = UInt64(window.end)
      result.add(start: UInt64(window.start) & ~mask, end: end > UInt64.max - mask ? end : (end + mask) & ~mask)
    }
    return result
  }

  private mutating func remove(at index: Int) {
    var slot = index
    while slot + 1 < count {
      storage[slot] = storage[slot + 1]
      slot += 1
    }
    count -= 1
  }
}
