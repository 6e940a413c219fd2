import PageFrames

/// A reserved physical range and what it holds.
public struct Reservation: Equatable, Sendable {
  /// The reserved bytes, exact (every page they touch is reserved).
  public var range: PhysicalRange
  /// A reserved kind (`isReserved`) or `.heap` for the initial heap.
  public var owner: PageOwner

  /// `range` reserved as `owner`.
  /// - Complexity: O(1).
  public init(_ range: PhysicalRange, _ owner: PageOwner) {
    self.range = range
    self.owner = owner
  }
}

/// Boot memory as firmware describes it, in the style of Linux's memblock: the RAM
/// ranges (sorted, and merged where they touch or overlap) and the reserved ranges, each
/// with its kind. memInit places the page array and the heap around the reservations and
/// frees exactly RAM minus reservations. Fixed capacity: nothing here allocates (it runs
/// before the heap exists), so a description past a table's size is refused with a
/// typed error, never cut short.
public struct BootMemory: Sendable {
  /// Most reservations `reserve` takes (firmware's, the DTB's and any caller's).
  public static let reservationCapacity = 128
  /// Reservations memInit adds of its own on top of `reservationCapacity`: low memory,
  /// kernel, page array, heap.
  static let plannedReservations = 4
  /// `reservationCapacity + plannedReservations`: the table's size.
  private static let storeCapacity = 132

  /// The RAM ranges, sorted by address, page aligned, neither touching nor overlapping
  /// (`addRAM` merges ranges that do).
  public private(set) var ram = PhysicalRanges()
  private var reservationStore = InlineArray<132, Reservation>(repeating: Reservation(PhysicalRange(start: 0, end: 0), .firmware))
  /// Reservations held.
  public private(set) var reservationCount = 0
  /// RAM bytes dropped because they lie above `limit` in `clamp(above:)`.
  public private(set) var clampedBytes: UInt = 0

  /// No RAM, no reservations.
  /// - Complexity: O(capacity).
  public init() {}

  /// Adds the RAM range `[start, start + size)`. A range that touches or overlaps one
  /// added before is merged with it (as Linux's memblock does: two NUMA nodes side by
  /// side, or one `reg` split in two, are one stretch of RAM); RAM described twice is
  /// RAM once.
  ///
  /// - Throws: `MemInitError`: `ramMisaligned` (start or size not page aligned, or size
  ///   0), `ramWraps` (it passes or ends at 2^64), `tooManyRanges` (more than 64 after
  ///   merging), `tooManyPages` (more than `PageFrameAllocator.maximumPages`, 2^32 - 2,
  ///   pages in all after merging). Nothing changes then.
  /// - Complexity: O(ranges).
  public mutating func addRAM(start: UInt, size: UInt) throws(MemInitError) {
    guard Page.isAligned(start), Page.isAligned(size), size > 0 else { throw MemInitError(.ramMisaligned, start) }
    let (end, wrapped) = start.addingReportingOverflow(size)
    // A range ending exactly at 2^64 wraps to 0: its end has no representation.
    guard !wrapped, end != 0 else { throw MemInitError(.ramWraps, start) }
    // The union, rebuilt in address order: ranges wholly before or after the new one are
    // copied, ranges that touch or overlap it are folded into it.
    var merged = PhysicalRanges()
    var added = PhysicalRange(start: start, end: end)
    var placed = false
    for index in 0..<ram.count {
      let range = ram[index]
      if range.end < added.start {
        merged.append(range)
      } else if range.start > added.end {
        if !placed {
          guard merged.append(added) else { throw MemInitError(.tooManyRanges, start) }
          placed = true
        }
        guard merged.append(range) else { throw MemInitError(.tooManyRanges, start) }
      } else {
        added = PhysicalRange(start: min(added.start, range.start), end: max(added.end, range.end))
      }
    }
    if !placed { guard merged.append(added) else { throw MemInitError(.tooManyRanges, start) } }
    guard merged.totalPages <= PageFrameAllocator.maximumPages else { throw MemInitError(.tooManyPages, start) }
    ram = merged
  }

  /// Reserves `[start, end)` (any alignment: the pages it touches) as `owner`. Empty
  /// ranges are dropped: they reserve nothing and take no slot. Ranges need not lie in
  /// RAM (only their RAM part matters).
  ///
  /// - Throws: `MemInitError`: `reservationWraps` for `end < start` (a size that passed
  ///   2^64), `badReservationOwner` for an owner that is neither a reserved kind
  ///   (`isReserved`) nor `.heap`, `tooManyReservations` past `reservationCapacity`
  ///   (128). Nothing changes then.
  /// - Complexity: O(1).
  public mutating func reserve(start: UInt, end: UInt, as owner: PageOwner) throws(MemInitError) {
    try reserve(start: start, end: end, as: owner, capacity: BootMemory.reservationCapacity)
  }

  /// `reserve`, for memInit's own reservations: they have `plannedReservations` slots
  /// of their own past `reservationCapacity`, so firmware's full quota stays usable.
  mutating func reservePlanned(start: UInt, end: UInt, as owner: PageOwner) throws(MemInitError) {
    try reserve(start: start, end: end, as: owner, capacity: BootMemory.storeCapacity)
  }

  private mutating func reserve(start: UInt, end: UInt, as owner: PageOwner, capacity: Int) throws(MemInitError) {
    guard end >= start else { throw MemInitError(.reservationWraps, start) }
    guard owner.isReserved || owner == .heap else { throw MemInitError(.badReservationOwner, start) }
    guard end > start else { return }
    guard reservationCount < capacity else { throw MemInitError(.tooManyReservations, start) }
    reservationStore[reservationCount] = Reservation(PhysicalRange(start: start, end: end), owner)
    reservationCount += 1
  }

  /// Reservation `index`, in the order they were made (later ones win where they overlap
  /// in the page array).
  /// - Precondition: `0 <= index < reservationCount`.
  /// - Complexity: O(1).
  public func reservation(_ index: Int) -> Reservation {
    precondition(index >= 0 && index < reservationCount, "reservation index out of range")
    return reservationStore[index]
  }

  /// Drops the RAM above `limit` rounded down to a page (what the early identity map
  /// cannot reach), keeping count of the bytes in `clampedBytes`; the ranges stay page
  /// aligned whatever `limit` is.
  /// - Complexity: O(ranges).
  public mutating func clamp(above limit: UInt) {
    let limit = Page.roundDown(limit)
    var kept = PhysicalRanges()
    for index in 0..<ram.count {
      var range = ram[index]
      if range.end > limit {
        let cut = range.start >= limit ? range : PhysicalRange(start: limit, end: range.end)
        clampedBytes += cut.bytes
        range.end = max(range.start, min(range.end, limit))
      }
      if !range.isEmpty { kept.append(range) }
    }
    ram = kept
  }

  /// The RAM range holding `address`, or nil.
  /// - Complexity: O(ranges).
  public func ramRange(containing address: UInt) -> PhysicalRange? {
    for index in 0..<ram.count where ram[index].contains(address) { return ram[index] }
    return nil
  }

  /// The first reservation that shares a byte with `range`, or nil.
  /// - Complexity: O(reservations).
  public func firstReservation(overlapping range: PhysicalRange) -> Reservation? {
    for index in 0..<reservationCount where reservationStore[index].range.overlaps(range) { return reservationStore[index] }
    return nil
  }

  /// The lowest page-aligned address at or above `from` where `bytes` bytes fit inside
  /// one RAM range without touching any reservation (first fit), or nil.
  /// - Complexity: O(ranges × reservations²) at most; a few hundred steps in practice.
  public func firstFit(bytes: UInt, from: UInt) -> UInt? {
    guard var candidate = Page.roundUp(from) else { return nil }
    for index in 0..<ram.count {
      let range = ram[index]
      if range.end <= candidate { continue }
      candidate = max(candidate, range.start)
      while true {
        let (end, wrapped) = candidate.addingReportingOverflow(bytes)
        guard !wrapped, end <= range.end else { break }
        guard let blocker = firstReservation(overlapping: PhysicalRange(start: candidate, end: end)) else { return candidate }
        guard let next = Page.roundUp(blocker.range.end) else { return nil }
        candidate = next
      }
    }
    return nil
  }

  /// Calls `body` with every range of RAM that no reservation touches (whole pages:
  /// starts rounded up, ends rounded down, as Linux's PFN_UP/PFN_DOWN), in address order.
  /// - Complexity: O(ranges × reservations²).
  public func forEachFreeRange(_ body: (PhysicalRange) -> Void) {
    for index in 0..<ram.count {
      var cursor = ram[index].start
      let end = ram[index].end
      while cursor < end {
        // The reservation touching [cursor, end) that starts lowest.
        let rest = PhysicalRange(start: cursor, end: end)
        var blockerStart = UInt.max
        var blockerEnd: UInt = 0
        for r in 0..<reservationCount where reservationStore[r].range.overlaps(rest) && reservationStore[r].range.start < blockerStart {
          blockerStart = reservationStore[r].range.start
          blockerEnd = reservationStore[r].range.end
        }
        guard blockerEnd > 0 else {
          body(rest)
          break
        }
        let gapEnd = Page.roundDown(max(blockerStart, cursor))
        if gapEnd > cursor { body(PhysicalRange(start: cursor, end: gapEnd)) }
        // The blocker overlaps [cursor, end), so its rounded end lies past cursor.
        guard let next = Page.roundUp(blockerEnd) else { break }
        cursor = next
      }
    }
  }

  /// Pages `forEachFreeRange` hands out: RAM pages no reservation touches.
  /// - Complexity: O(ranges × reservations²).
  public var freePages: Int {
    var total = 0
    forEachFreeRange { total += $0.pages }
    return total
  }

  /// Bytes of the largest stretch of whole free pages at or above `from` (what
  /// `firstFit` could place there), 0 when there is none.
  /// - Complexity: O(ranges × reservations²).
  public func largestFreeRun(from: UInt) -> UInt {
    var largest: UInt = 0
    forEachFreeRange { range in
      let start = max(range.start, Page.roundUp(from) ?? UInt.max)
      if range.end > start { largest = max(largest, range.end - start) }
    }
    return largest
  }
}
