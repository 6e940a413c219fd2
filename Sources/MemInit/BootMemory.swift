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
/// ranges and the reserved ranges, each with its kind. memInit places the page array and
/// the heap around the reservations and frees exactly RAM minus reservations. Fixed
/// capacity: nothing here allocates (it runs before the heap exists).
public struct BootMemory: Sendable {
  /// Most reservations held.
  public static let reservationCapacity = 128

  /// The RAM ranges, sorted by address, page aligned, not overlapping.
  public private(set) var ram = PhysicalRanges()
  private var reservationStore = InlineArray<128, Reservation>(repeating: Reservation(PhysicalRange(start: 0, end: 0), .firmware))
  /// Reservations held.
  public private(set) var reservationCount = 0
  /// RAM bytes dropped because they lie above `limit` in `clamp(above:)`.
  public private(set) var clampedBytes: UInt = 0

  /// No RAM, no reservations.
  /// - Complexity: O(capacity).
  public init() {}

  /// Adds the RAM range `[start, start + size)`.
  ///
  /// - Throws: `MemInitError`: `ramMisaligned` (start or size not page aligned, or size
  ///   0), `ramWraps` (it passes or ends at 2^64), `ramOverlaps` (it shares a page with a
  ///   range already added), `tooManyRanges` (more than 64), `tooManyPages` (2^32 - 2
  ///   pages or more in all). Nothing changes then.
  /// - Complexity: O(ranges).
  public mutating func addRAM(start: UInt, size: UInt) throws(MemInitError) {
    guard Page.isAligned(start), Page.isAligned(size), size > 0 else { throw MemInitError(.ramMisaligned, start) }
    let (end, wrapped) = start.addingReportingOverflow(size)
    // A range ending exactly at 2^64 wraps to 0: its end has no representation.
    guard !wrapped, end != 0 else { throw MemInitError(.ramWraps, start) }
    let range = PhysicalRange(start: start, end: end)
    for index in 0..<ram.count where ram[index].overlaps(range) { throw MemInitError(.ramOverlaps, start) }
    guard ram.totalPages + range.pages <= PageFrameAllocator.maximumPages else { throw MemInitError(.tooManyPages, start) }
    guard ram.append(range) else { throw MemInitError(.tooManyRanges, start) }
    ram.sort()
  }

  /// Reserves `[start, end)` (any alignment: the pages it touches) as `owner`. Empty
  /// ranges are ignored; ranges need not lie in RAM (only their RAM part matters).
  ///
  /// - Throws: `MemInitError`: `ramWraps` for `end < start`, `tooManyReservations` past
  ///   128. Nothing changes then.
  /// - Complexity: O(1).
  public mutating func reserve(start: UInt, end: UInt, as owner: PageOwner) throws(MemInitError) {
    guard end >= start else { throw MemInitError(.ramWraps, start) }
    guard end > start else { return }
    guard reservationCount < BootMemory.reservationCapacity else { throw MemInitError(.tooManyReservations, start) }
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

  /// Drops the RAM above `limit` (what the early identity map cannot reach), keeping
  /// count of the bytes in `clampedBytes`.
  /// - Complexity: O(ranges).
  public mutating func clamp(above limit: UInt) {
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
}
