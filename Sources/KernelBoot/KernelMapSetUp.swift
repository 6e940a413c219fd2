// The kernel map: built from page frames once memInit has run, then switched to in
// place of the early identity map. Identity throughout (virtual = physical), so the
// switch moves nothing; what changes is what each range allows.
import FlattenedDeviceTree
import KernelPlatform
import PageFrames
import VirtualMemory

extension Platform {
  /// The kernel map's regions: the image's sections as the platform gives them, every
  /// RAM range of `frames` outside the image as the read-write, never executable direct
  /// map, and the MMIO windows (`devices`) outside RAM as Device-nGnRE.
  /// - Returns: the regions, or nil when they do not fit `KernelMapRegions.capacity`.
  /// - Complexity: O(RAM ranges × windows).
  public func kernelMapLayout(frames: PageFrameAllocator, devices: DeviceWindows) -> KernelMapRegions? {
    var regions = KernelMapRegions()
    kernelImageRegions(into: &regions)
    let image = kernelImage
    var imageOnly = PhysicalRanges()
    _ = imageOnly.append(PhysicalRange(start: image.start, end: image.end))
    let ram = frames.ranges
    for index in 0..<ram.count {
      let range = ram[index]
      guard regions.append(range.start, range.end, outside: imageOnly, attributes: .kernelData, name: "direct map") else {
        return nil
      }
    }
    for index in 0..<devices.count {
      let window = devices[index]
      guard regions.append(window.start, window.end, outside: ram, attributes: .kernelDevice, name: "device") else {
        return nil
      }
    }
    return regions
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
