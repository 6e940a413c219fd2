// The kernel map: built from page frames once memInit has run, then switched to in
// place of the early identity map. Identity throughout (virtual = physical), so the
// switch moves nothing; what changes is what each range allows.
import FlattenedDeviceTree
import KernelPlatform
import PageFrames
import VirtualMemory

extension Platform {
  /// The kernel map's regions: the image's sections as the platform gives them; every
  /// RAM range of `frames` outside the image as the read-write, never executable direct
  /// map, less the reservations of `memory` that are not to be mapped as RAM: `no-map`
  /// children of /reserved-memory (listed, left unmapped, as Linux leaves them out of
  /// its linear map) and MMIO inside RAM (device memory); and the MMIO windows
  /// (`devices`, rounded out to 2 MiB) outside RAM as device memory.
  /// - Returns: whether they fit `regions` (appended to): false when they need more than
  ///   the list's `capacity` (or more than `PhysicalRanges.capacity` no-map and
  ///   MMIO reservations).
  /// - Complexity: O(reservations + RAM ranges × (reservations + windows)).
  public func kernelMapLayout(
    frames: PageFrameAllocator, memory: BootMemory, devices: DeviceWindows, into regions: inout KernelMapRegions
  ) -> Bool {
    kernelImageRegions(into: &regions)
    let image = kernelImage
    // What the direct map leaves out: the image (its sections are above), no-map and
    // MMIO reservations, each rounded out to pages.
    var excluded = PhysicalRanges()
    guard excluded.append(PhysicalRange(start: image.start, end: image.end)) else { return false }
    let pageMask = UInt(Page.size - 1)
    for index in 0..<memory.reservationCount {
      let reservation = memory.reservation(index)
      guard reservation.owner == .noMap || reservation.owner == .mmio, !reservation.range.isEmpty else { continue }
      let start = reservation.range.start & ~pageMask
      let end = reservation.range.end > UInt.max - pageMask ? UInt.max & ~pageMask : (reservation.range.end + pageMask) & ~pageMask
      guard excluded.append(PhysicalRange(start: start, end: end)) else { return false }
      let unmapped = reservation.owner == .noMap
      guard
        regions.append(
          KernelMapRegion(
            start: start, end: end, attributes: unmapped ? [] : .kernelDevice, name: unmapped ? "no-map hole" : "MMIO"))
      else { return false }
    }
    excluded.sort()
    let ram = frames.ranges
    for index in 0..<ram.count {
      let range = ram[index]
      guard regions.append(range.start, range.end, outside: excluded, attributes: .kernelData, name: "direct map") else {
        return false
      }
    }
    // MMIO in 2 MiB blocks: outside RAM nothing else lives at those addresses, and one
    // level-3 table less per window.
    let windows = devices.rounded(to: TranslationFormat.span(level: 2))
    for index in 0..<windows.count {
      let window = windows[index]
      guard regions.append(window.start, window.end, outside: ram, attributes: .kernelDevice, name: "MMIO") else {
        return false
      }
    }
    return true
  }
}

extension Platform {
  /// Prints the kernel map: one line per region with its range and what it allows, and
  /// the vmalloc range.
  /// - Complexity: O(regions).
  public func printKernelMap(_ regions: KernelMapRegions, space: AddressSpace, nanoseconds: UInt64) {
    let statistics = space.statistics
    kput("kernel map: ")
    kputDecimal(UInt(regions.count))
    kput(" regions, ")
    kputDecimal(UInt(statistics.tablePages))
    kput(" table pages, built in ")
    kputDecimal(UInt(nanoseconds / 1000))
    kput(" us\n")
    for index in 0..<regions.count {
      let region = regions[index]
      kput("  ")
      kput(region.name)
      var pad = 18 - region.name.utf8CodeUnitCount
      while pad > 0 {
        kput(" ")
        pad -= 1
      }
      kput(" [")
      kputHex(region.start, digits: 8)
      kput(", ")
      kputHex(region.end, digits: 8)
      kput(") ")
      kput(region.permissions)
      kput("\n")
    }
    if let range = space.vmallocRange {
      kput("  vmalloc and stacks [")
      kputHex(range.lowerBound, digits: 8)
      kput(", ")
      kputHex(range.upperBound, digits: 8)
      kput(") rw- on demand, guard pages unmapped\n")
    }
  }
}
