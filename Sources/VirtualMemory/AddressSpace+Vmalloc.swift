import KernelSync
import PageFrames

/// One vmalloc area or stack: `pages` mapped pages from `start`, `guardBelow` unmapped
/// pages under them and one unmapped page above.
struct VmallocArea {
  var start: UInt
  var pages: UInt32
  var guardBelow: UInt16
  /// 0 for vmalloc; a stack's CPU number + 1.
  var stackOwner: UInt16

  // Wrapping: `vmallocArea(containing:)` reads records without the lock, and a torn
  // read must give a wrong answer, never a trap.
  var reservedStart: UInt { start &- UInt(guardBelow) << 12 }
  var end: UInt { start &+ UInt(pages) << 12 }
  var reservedEnd: UInt { end &+ UInt(Page.size) }
}

/// What `AddressSpace.vmallocArea(containing:)` finds: an area and whether the address
/// is one of its guard pages.
public struct VmallocAreaDescription: Equatable, Sendable {
  /// First mapped byte of the area.
  public let start: UInt
  /// Mapped bytes.
  public let bytes: UInt
  /// The CPU whose kernel stack the area is; nil for a vmalloc area.
  public let stackOfCPU: Int?
  /// The address lies in the unmapped guard page below or above the area.
  public let inGuardPage: Bool
}

extension AddressSpace {
  /// Most pages one vmalloc area may have.
  public static var vmallocMaximumPages: Int { Int(UInt32.max) }

  /// Gives vmalloc and `allocateStack` the virtual range `[base, limit)`; it must hold
  /// no mapping (nothing checks that later mappings stay out of it).
  /// - Throws: `misaligned`, `outOfRange` (past `format.addressLimit`, or `limit <= base`),
  ///   `alreadyMapped` (set before, or a page in it is mapped), `reentered`.
  /// - Complexity: O(tables the range spans).
  public func setVmallocRange(base: UInt, limit: UInt) throws(VirtualMemoryError) {
    guard (base | limit) & UInt(Page.size - 1) == 0 else { throw VirtualMemoryError(.misaligned, base) }
    guard base < limit, limit <= format.addressLimit else { throw VirtualMemoryError(.outOfRange, base) }
    let failure = locked.withLock(cpu: CPU.current) { state -> VirtualMemoryError? in
      if state.vmallocLimit != 0 { return VirtualMemoryError(.alreadyMapped, state.vmallocBase) }
      if let mapped = firstAddress(mapped: true, table: root, level: format.firstLevel, base: 0, start: base, end: limit) {
        return VirtualMemoryError(.alreadyMapped, mapped)
      }
      state.vmallocBase = base
      state.vmallocLimit = limit
      return nil
    } ?? VirtualMemoryError(.reentered, base)
    if let failure { throw failure }
  }

  /// Virtually contiguous, zeroed, kernel read-write memory of at least `bytes` bytes
  /// from scattered page frames (owner `.vmalloc`), page aligned, with an unmapped
  /// guard page after it. Usable only while this space is the one the MMU walks.
  /// - Throws: `badCount` (`bytes <= 0` or more than `vmallocMaximumPages` pages),
  ///   `outOfMemory` (no frames, or no room in the vmalloc range; nothing is kept),
  ///   `reentered`.
  /// - Complexity: O(pages) allocations and mappings, plus O(areas) to find room.
  public func vmalloc(_ bytes: Int) throws(VirtualMemoryError) -> UnsafeMutableRawPointer {
    let start = try allocateArea(bytes: bytes, guardBelow: 0, stackOwner: 0)
    return UnsafeMutableRawPointer(bitPattern: start).unsafelyUnwrapped
  }

  /// A kernel stack of at least `bytes` bytes for CPU `cpu` (or any thread: the number
  /// only names it in reports), from vmalloc, with an unmapped guard page below it and
  /// one above: running off its low end faults instead of writing the memory below.
  /// - Returns: the stack's lowest and one-past-highest addresses (the initial SP).
  /// - Throws: as `vmalloc`; `badCount` also for a `cpu` outside `0..<65535`.
  /// - Complexity: as `vmalloc`.
  public func allocateStack(bytes: Int, cpu: Int) throws(VirtualMemoryError) -> (bottom: UInt, top: UInt) {
    guard cpu >= 0 && cpu < 65535 else { throw VirtualMemoryError(.badCount, UInt(bitPattern: cpu)) }
    let start = try allocateArea(bytes: bytes, guardBelow: 1, stackOwner: UInt16(cpu + 1))
    return (start, start + UInt((bytes + Page.size - 1) / Page.size) << 12)
  }

  /// Unmaps the vmalloc area or stack starting at `pointer` and gives its frames back
  /// (after the TLB invalidation).
  /// - Throws: `notVmallocArea` (not an area's first byte: nothing changes),
  ///   `reentered`.
  /// - Complexity: O(log areas + areas) to find and remove the record, O(pages) to unmap
  ///   and free.
  public func vfree(_ pointer: UnsafeMutableRawPointer) throws(VirtualMemoryError) {
    let address = UInt(bitPattern: pointer)
    let failure = locked.withLock(cpu: CPU.current) { state -> VirtualMemoryError? in
      guard let index = areaIndex(startingAt: address, state) else { return VirtualMemoryError(.notVmallocArea, address) }
      let area = state.areas.unsafelyUnwrapped[index]
      releasePages(area.start, pages: Int(area.pages), &state)
      removeArea(at: index, &state)
      return nil
    } ?? VirtualMemoryError(.reentered, address)
    if let failure { throw failure }
  }

  /// The vmalloc area or stack whose pages or guard pages hold `address`; nil outside
  /// every area. A racy read without the lock, for exception reports.
  /// - Complexity: O(log areas).
  public func vmallocArea(containing address: UInt) -> VmallocAreaDescription? {
    let state = locked.snapshot.pointee
    guard let areas = state.areas else { return nil }
    var low = 0
    // A racy read: never past the records the array it read can hold.
    var high = max(0, min(state.areaCount, state.areaCapacity))
    while low < high {
      let middle = (low + high) / 2
      let area = areas[middle]
      if address < area.reservedStart {
        high = middle
      } else if address >= area.reservedEnd {
        low = middle + 1
      } else {
        return VmallocAreaDescription(
          start: area.start, bytes: UInt(area.pages) &<< 12,
          stackOfCPU: area.stackOwner == 0 ? nil : Int(area.stackOwner) - 1,
          inGuardPage: address < area.start || address >= area.end)
      }
    }
    return nil
  }

  /// The vmalloc range, or nil before `setVmallocRange`.
  public var vmallocRange: Range<UInt>? {
    let state = locked.snapshot.pointee
    return state.vmallocLimit == 0 ? nil : state.vmallocBase..<state.vmallocLimit
  }

  // MARK: Areas

  private func allocateArea(bytes: Int, guardBelow: Int, stackOwner: UInt16) throws(VirtualMemoryError) -> UInt {
    guard bytes > 0, (bytes - 1) / Page.size < AddressSpace.vmallocMaximumPages else {
      throw VirtualMemoryError(.badCount, UInt(bitPattern: bytes))
    }
    let pages = (bytes - 1) / Page.size + 1
    let result = locked.withLock(cpu: CPU.current) { state -> Result<UInt, VirtualMemoryError> in
      guard let index = insertArea(pages: pages, guardBelow: guardBelow, stackOwner: stackOwner, &state) else {
        return .failure(VirtualMemoryError(.outOfMemory, UInt(bitPattern: bytes)))
      }
      let start = state.areas.unsafelyUnwrapped[index].start
      for page in 0..<pages {
        let address = start + UInt(page) << 12
        guard let frame = frames.allocPages(order: 0, owner: .vmalloc) else {
          releasePages(start, pages: page, &state)
          removeArea(at: index, &state)
          return .failure(VirtualMemoryError(.outOfMemory, address))
        }
        if let failure = mapLocked(address, frames.physical(of: frame), bytes: UInt(Page.size), .kernelData, &state) {
          try? frames.freePages(frame, order: 0, owner: .vmalloc)
          releasePages(start, pages: page, &state)
          removeArea(at: index, &state)
          return .failure(failure)
        }
      }
      return .success(start)
    } ?? .failure(VirtualMemoryError(.reentered, 0))
    return try result.get()
  }

  /// Unmaps `pages` pages from `start` and frees their frames once no TLB holds them.
  private func releasePages(_ start: UInt, pages: Int, _ state: inout SpaceState) {
    guard pages > 0 else { return }
    // The frames, read before the mappings go; freed after the invalidation.
    var physical = InlineArray<16, UInt>(repeating: 0)
    var done = 0
    while done < pages {
      let chunk = min(16, pages - done)
      let chunkStart = start + UInt(done) << 12
      for page in 0..<chunk { physical[page] = walk(chunkStart + UInt(page) << 12)?.physical ?? 0 }
      _ = unmapLocked(chunkStart, bytes: UInt(chunk) << 12, &state)
      for page in 0..<chunk where physical[page] != 0 {
        try? frames.freePages(frames.pointer(toPhysical: physical[page]), order: 0, owner: .vmalloc)
      }
      done += chunk
    }
  }

  /// Finds room for an area (first fit), records it in order; nil when the range is
  /// full or the record list cannot grow.
  private func insertArea(pages: Int, guardBelow: Int, stackOwner: UInt16, _ state: inout SpaceState) -> Int? {
    guard state.vmallocLimit != 0 else { return nil }
    let needed = UInt(guardBelow + pages + 1) << 12
    var cursor = state.vmallocBase
    var slot = -1
    for index in 0...state.areaCount {
      let gapEnd = index < state.areaCount ? state.areas.unsafelyUnwrapped[index].reservedStart : state.vmallocLimit
      if gapEnd >= cursor && gapEnd - cursor >= needed {
        slot = index
        break
      }
      if index < state.areaCount { cursor = state.areas.unsafelyUnwrapped[index].reservedEnd }
    }
    guard slot >= 0 else { return nil }
    if state.areaCount == state.areaCapacity {
      let order = state.areaOrder + 1
      guard order <= Page.maxOrder, let grown = frames.allocPages(order: order, owner: .vmalloc, zeroed: false) else {
        return nil
      }
      let records = grown.bindMemory(to: VmallocArea.self, capacity: (Page.size << order) / MemoryLayout<VmallocArea>.stride)
      if let old = state.areas {
        records.update(from: old, count: state.areaCount)
        try? frames.freePages(UnsafeMutableRawPointer(old), order: state.areaOrder, owner: .vmalloc)
      }
      state.areas = records
      state.areaOrder = order
    }
    let areas = state.areas.unsafelyUnwrapped
    if slot < state.areaCount { (areas + slot + 1).update(from: areas + slot, count: state.areaCount - slot) }
    areas[slot] = VmallocArea(
      start: cursor + UInt(guardBelow) << 12, pages: UInt32(pages), guardBelow: UInt16(guardBelow), stackOwner: stackOwner)
    state.areaCount += 1
    return slot
  }

  private func removeArea(at index: Int, _ state: inout SpaceState) {
    let areas = state.areas.unsafelyUnwrapped
    if index + 1 < state.areaCount { (areas + index).update(from: areas + index + 1, count: state.areaCount - index - 1) }
    state.areaCount -= 1
  }

  private func areaIndex(startingAt address: UInt, _ state: SpaceState) -> Int? {
    guard let areas = state.areas else { return nil }
    var low = 0
    var high = state.areaCount
    while low < high {
      let middle = (low + high) / 2
      if areas[middle].start < address { low = middle + 1 } else { high = middle }
    }
    return low < state.areaCount && areas[low].start == address ? low : nil
  }

  /// Frees every area's frames and the record list (`destroy`; no maintenance).
  func freeVmallocAreas(_ state: inout SpaceState) {
    guard let areas = state.areas else { return }
    for index in 0..<state.areaCount {
      let area = areas[index]
      for page in 0..<Int(area.pages) {
        if let physical = walk(area.start + UInt(page) << 12)?.physical {
          try? frames.freePages(frames.pointer(toPhysical: physical), order: 0, owner: .vmalloc)
        }
      }
    }
    try? frames.freePages(UnsafeMutableRawPointer(areas), order: state.areaOrder, owner: .vmalloc)
    state.areas = nil
    state.areaCount = 0
    state.areaOrder = -1
  }

  /// The vmalloc invariants (`checkInvariants`).
  func checkAreas(_ state: SpaceState) -> AddressSpaceInvariantError? {
    guard let areas = state.areas else { return nil }
    var previousEnd = state.vmallocBase
    for index in 0..<state.areaCount {
      let area = areas[index]
      guard area.reservedStart >= previousEnd, area.reservedEnd <= state.vmallocLimit else {
        return AddressSpaceInvariantError(reason: "vmalloc areas overlap or leave the range", address: area.start)
      }
      for page in 0..<Int(area.pages) where walk(area.start + UInt(page) << 12) == nil {
        return AddressSpaceInvariantError(reason: "vmalloc page not mapped", address: area.start + UInt(page) << 12)
      }
      for guardPage in [area.reservedStart, area.end] where guardPage < area.start || guardPage == area.end {
        if walk(guardPage) != nil && guardPage != area.start {
          return AddressSpaceInvariantError(reason: "vmalloc guard page mapped", address: guardPage)
        }
      }
      previousEnd = area.reservedEnd
    }
    return nil
  }
}
