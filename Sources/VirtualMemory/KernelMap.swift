import PageFrames

/// One range of the kernel map: what it is and the attributes it is mapped with.
public struct KernelMapRegion: Sendable {
  /// First byte (virtual; the kernel map is the identity, so physical too).
  public let start: UInt
  /// One past the last byte.
  public let end: UInt
  /// What the mapping allows; empty for a guard page (left unmapped).
  public let attributes: MapAttributes
  /// A short name for the memory map and fault reports: ".text", "direct map", ...
  public let name: StaticString
  /// For a stack's guard page, the CPU whose stack it guards; -1 otherwise.
  public let guardOfCPU: Int

  /// A region `[start, end)` named `name`, mapped with `attributes` (empty: a guard page
  /// of CPU `guardOfCPU`'s stack, or an unmapped hole).
  /// - Complexity: O(1).
  public init(start: UInt, end: UInt, attributes: MapAttributes, name: StaticString, guardOfCPU: Int = -1) {
    self.start = start
    self.end = end
    self.attributes = attributes
    self.name = name
    self.guardOfCPU = guardOfCPU
  }

  /// Its attributes' `permissions`, or `--- guard` / `--- not mapped` for a region
  /// left out.
  /// - Complexity: O(1).
  public var permissions: StaticString {
    if attributes.isEmpty { return guardOfCPU >= 0 ? "--- guard" : "--- not mapped" }
    return attributes.permissions
  }
}

/// The regions of the kernel map, in the order they were added, in memory the caller
/// gives (`capacity` regions): a small view that exception reports copy for free. Only
/// the copy that appends sees its count grow: pass it `inout`.
public struct KernelMapRegions: @unchecked Sendable {
  /// Where the regions are.
  private let storage: UnsafeMutablePointer<KernelMapRegion>
  /// Most regions this list holds.
  public let capacity: Int
  /// Regions held.
  public private(set) var count = 0

  /// An empty list over `capacity` regions at `storage` (which need not be initialized:
  /// `KernelMapRegion` is a trivial type).
  /// - Precondition: `storage` holds `capacity` regions and outlives every copy.
  /// - Complexity: O(1).
  public init(storage: UnsafeMutablePointer<KernelMapRegion>, capacity: Int) {
    self.storage = storage
    self.capacity = max(0, capacity)
  }

  /// Adds a region; false (nothing added) when the list is full or the range is empty.
  /// - Complexity: O(1).
  @discardableResult
  public mutating func append(_ region: KernelMapRegion) -> Bool {
    guard count < capacity, region.start < region.end else { return false }
    storage[count] = region
    count += 1
    return true
  }

  /// Region `index` (`0 ..< count`).
  /// - Complexity: O(1).
  public subscript(index: Int) -> KernelMapRegion { storage[index] }

  /// Calls `body` with the permissions (`KernelMapRegion.permissions`) of the regions
  /// that overlap `[start, end)`, each distinct one once, in address order; with
  /// `--- not mapped` for any part no region covers.
  /// - Complexity: O(count²).
  public func forEachPermission(from start: UInt, to end: UInt, _ body: (StaticString) -> Void) {
    var seen = InlineArray<8, UInt>(repeating: 0)
    var seenCount = 0
    var cursor = start
    while cursor < end {
      // The region that covers `cursor`, or the nearest one above it.
      var next: KernelMapRegion? = nil
      for index in 0..<count {
        let region = storage[index]
        guard region.end > cursor, region.start < end else { continue }
        if next == nil || region.start < next.unsafelyUnwrapped.start { next = region }
      }
      let text: StaticString
      if let region = next, region.start <= cursor {
        text = region.permissions
        cursor = region.end
      } else {
        text = "--- not mapped"
        cursor = next?.start ?? end
      }
      let key = UInt(bitPattern: text.utf8Start)
      var already = false
      for index in 0..<seenCount where seen[index] == key { already = true }
      if !already && seenCount < 8 {
        seen[seenCount] = key
        seenCount += 1
        body(text)
      }
    }
  }

  /// The region holding `address`, the last one added winning; nil outside all.
  /// - Complexity: O(count).
  public func region(containing address: UInt) -> KernelMapRegion? {
    var index = count - 1
    while index >= 0 {
      if storage[index].start <= address && address < storage[index].end { return storage[index] }
      index -= 1
    }
    return nil
  }
}

extension KernelMapRegions {
  /// Appends `[start, end)` less every RAM range of `ram` (sorted), as `name` with
  /// `attributes`; false when the list filled up.
  /// - Complexity: O(RAM ranges).
  public mutating func append(
    _ start: UInt, _ end: UInt, outside ram: PhysicalRanges, attributes: MapAttributes, name: StaticString
  ) -> Bool {
    var cursor = start
    for index in 0..<ram.count where cursor < end {
      let range = ram[index]
      guard range.end > cursor else { continue }
      guard range.start < end else { break }
      if range.start > cursor {
        guard append(KernelMapRegion(start: cursor, end: range.start, attributes: attributes, name: name)) else { return false }
      }
      cursor = max(cursor, range.end)
    }
    if cursor < end {
      return append(KernelMapRegion(start: cursor, end: end, attributes: attributes, name: name))
    }
    return true
  }
}

/// The kernel's address space, set by the boot sequence once the kernel map is built
/// and in use; nil before (and in tests that do not build one).
public nonisolated(unsafe) var kernelAddressSpace: AddressSpace? = nil
/// The regions of the kernel map, for the memory map and fault reports: set by the boot
/// sequence (over page frames of their own), nil before.
public nonisolated(unsafe) var kernelMapRegions: KernelMapRegions? = nil

extension AddressSpace {
  /// Maps every region of `regions` with attributes (guard regions stay unmapped), in
  /// order; the first failure is thrown (what was mapped stays: the space is new and is
  /// not in use yet, so the caller destroys it).
  /// - Complexity: O(pages / block size) over the regions.
  public func map(_ regions: KernelMapRegions) throws(VirtualMemoryError) {
    for index in 0..<regions.count {
      let region = regions[index]
      guard !region.attributes.isEmpty else { continue }
      try map(region.start, region.start, pages: Int((region.end - region.start) >> 12), region.attributes)
    }
  }

  /// What the kernel map and vmalloc say about a faulting address, for reports.
  /// - Complexity: O(regions + log areas + levels), without the lock.
  public func describeFault(at address: UInt, regions: KernelMapRegions) -> FaultCause {
    if let area = vmallocArea(containing: address) {
      if area.inGuardPage {
        if let cpu = area.stackOfCPU, address < area.start {
          return .stackOverflow(cpu: cpu, guardPage: address & ~UInt(Page.size - 1))
        }
        return .vmallocGuard(areaStart: area.start, areaBytes: area.bytes, stackOfCPU: area.stackOfCPU)
      }
    }
    if let region = regions.region(containing: address), region.attributes.isEmpty, region.guardOfCPU >= 0 {
      return .stackOverflow(cpu: region.guardOfCPU, guardPage: address & ~UInt(Page.size - 1))
    }
    guard let translation = translateUnlocked(address) else { return .notMapped }
    if let region = regions.region(containing: address) {
      return .permission(region: region.name, start: region.start, end: region.end, attributes: translation.attributes)
    }
    if let area = vmallocArea(containing: address) {
      return .permission(region: "vmalloc area", start: area.start, end: area.start &+ area.bytes, attributes: translation.attributes)
    }
    return .permission(region: "mapping", start: address & ~UInt(Page.size - 1), end: (address & ~UInt(Page.size - 1)) + UInt(Page.size), attributes: translation.attributes)
  }
}

/// What the tables say about an address that faulted.
public enum FaultCause: Sendable {
  /// The guard page below CPU `cpu`'s kernel stack.
  case stackOverflow(cpu: Int, guardPage: UInt)
  /// The guard page of a vmalloc area (or above a stack).
  case vmallocGuard(areaStart: UInt, areaBytes: UInt, stackOfCPU: Int?)
  /// Nothing maps it.
  case notMapped
  /// It is mapped, inside `region`, with `attributes`: the access was not allowed.
  case permission(region: StaticString, start: UInt, end: UInt, attributes: MapAttributes)
}
