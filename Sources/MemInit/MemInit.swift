import KernelHeap
import PageFrames

// Physical memory after memInit (raspi3b; virt is the same shifted to 0x40000000,
// with the DTB at the RAM base inside the firmware range):
//
//   RAM base ─► +--------------------------+
//               | firmware / low memory    |  [base, __kernel_start)
//   0x200000 ─► +--------------------------+
//               | kernel image             |  [__kernel_start, __end)
//   __end    ─► +--------------------------+
//               | page metadata array      |  16 B per page, page-rounded
//               +--------------------------+ ◄─ heapStart
//               | kernel heap (1 MiB)      |
//               +--------------------------+
//               | free: page allocator     |  up to RAM end
//   RAM end  ─► +--------------------------+

/// What memInit needs to know about the machine. The kernel fills it from Arch; host
/// tests point it at a buffer standing in for RAM (`directMapOffset`).
public struct MemInitConfig {
  public var ramBase: UInt
  public var ramSize: UInt
  /// `__kernel_start`.
  public var kernelStart: UInt
  /// `__end` (page aligned).
  public var kernelEnd: UInt
  /// The DTB's range, or empty.
  public var dtbStart: UInt
  public var dtbEnd: UInt
  public var heapBytes: Int
  /// pointer = physical + directMapOffset (0 in the kernel).
  public var directMapOffset: Int
  public var zeroFill: ZeroFill

  /// A configuration; the DTB range may be empty and the heap defaults to 1 MiB.
  /// - Precondition: none here; `planLayout` checks the values.
  /// - Complexity: O(1).
  public init(
    ramBase: UInt, ramSize: UInt, kernelStart: UInt, kernelEnd: UInt,
    dtbStart: UInt = 0, dtbEnd: UInt = 0, heapBytes: Int = kernelHeapInitialBytes,
    directMapOffset: Int = 0, zeroFill: ZeroFill
  ) {
    self.ramBase = ramBase
    self.ramSize = ramSize
    self.kernelStart = kernelStart
    self.kernelEnd = kernelEnd
    self.dtbStart = dtbStart
    self.dtbEnd = dtbEnd
    self.heapBytes = heapBytes
    self.directMapOffset = directMapOffset
    self.zeroFill = zeroFill
  }

  /// Pointer through the direct map to physical address `physical`.
  func pointer(toPhysical physical: UInt) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: Int(bitPattern: physical) &+ directMapOffset)!
  }
}

/// Why memInit refused to lay out memory.
public struct MemInitError: Error, Sendable, Equatable {
  public enum Reason: UInt8, Sendable {
    /// RAM base or size not page aligned.
    case ramMisaligned
    /// The kernel image does not lie inside RAM.
    case kernelOutsideRAM
    /// RAM is smaller than kernel + page array + heap.
    case ramTooSmall

    public var text: StaticString {
      switch self {
      case .ramMisaligned: return "RAM base or size not page aligned"
      case .kernelOutsideRAM: return "kernel image outside RAM"
      case .ramTooSmall: return "RAM smaller than kernel + page array + heap"
      }
    }
  }
  public let reason: Reason
  /// The address that broke the layout (RAM end for ramTooSmall).
  public let address: UInt

  /// An error for `reason` at `address`.
  /// - Complexity: O(1).
  public init(reason: Reason, address: UInt) {
    self.reason = reason
    self.address = address
  }
}

/// Where memInit puts things: all physical, page aligned.
public struct BootLayout: Sendable, Equatable {
  public let pageCount: Int
  public let metadataStart: UInt
  public let metadataEnd: UInt
  public let heapStart: UInt
  public let heapEnd: UInt
  public let ramEnd: UInt
}

/// Computes the layout without touching memory: the array at the first page boundary
/// after `__end`, the heap right after the array's last page.
///
/// - Throws: `MemInitError` when RAM cannot hold kernel + array + heap.
/// - Complexity: O(1).
public func planLayout(_ config: MemInitConfig) throws(MemInitError) -> BootLayout {
  let pageMask = UInt(Page.size - 1)
  guard config.ramBase & pageMask == 0, config.ramSize & pageMask == 0, config.ramSize > 0 else {
    throw MemInitError(reason: .ramMisaligned, address: config.ramBase)
  }
  let (ramEnd, wrapped) = config.ramBase.addingReportingOverflow(config.ramSize)
  guard !wrapped else { throw MemInitError(reason: .ramMisaligned, address: config.ramBase) }
  guard config.kernelStart >= config.ramBase, config.kernelStart <= config.kernelEnd, config.kernelEnd <= ramEnd else {
    throw MemInitError(reason: .kernelOutsideRAM, address: config.kernelStart)
  }
  let pageCount = Int(config.ramSize >> UInt(Page.shift))
  let metadataStart = (config.kernelEnd + pageMask) & ~pageMask
  let metadataBytes = UInt(PageFrameAllocator.metadataBytes(pageCount: pageCount))
  let metadataEnd = (metadataStart + metadataBytes + pageMask) & ~pageMask
  let heapStart = metadataEnd
  let heapEnd = heapStart + (UInt(config.heapBytes) + pageMask) & ~pageMask
  guard heapEnd <= ramEnd else { throw MemInitError(reason: .ramTooSmall, address: ramEnd) }
  return BootLayout(
    pageCount: pageCount, metadataStart: metadataStart, metadataEnd: metadataEnd,
    heapStart: heapStart, heapEnd: heapEnd, ramEnd: ramEnd)
}

/// Builds the page metadata array and the page allocator for `config`: zeroes the array
/// (bzero in the kernel), reserves firmware, kernel, array, heap and DTB pages in that
/// order, and hands every other page to the free lists.
///
/// - Complexity: O(pages) for zeroing the array; the rest is O(reserved pages + RAM / 4 MiB).
public func buildPageFrames(_ config: MemInitConfig, _ layout: BootLayout) -> PageFrameAllocator {
  var frames = PageFrameAllocator(
    base: config.ramBase, pageCount: layout.pageCount, metadata: config.pointer(toPhysical: layout.metadataStart),
    directMapOffset: config.directMapOffset, zeroFill: config.zeroFill)
  frames.reserve(start: config.ramBase, end: config.kernelStart, as: .firmware)
  frames.reserve(start: config.kernelStart, end: config.kernelEnd, as: .kernel)
  frames.reserve(start: layout.metadataStart, end: layout.metadataEnd, as: .metadata)
  frames.reserve(start: layout.heapStart, end: layout.heapEnd, as: .heap)
  if config.dtbEnd > config.dtbStart {
    frames.reserve(start: config.dtbStart, end: config.dtbEnd, as: .deviceTree)
  }
  // Everything above the heap is free, except a DTB placed there.
  let dtbPageStart = config.dtbStart & ~UInt(Page.size - 1)
  if config.dtbEnd > config.dtbStart && dtbPageStart >= layout.heapEnd {
    frames.release(start: layout.heapEnd, end: dtbPageStart)
    frames.release(start: config.dtbEnd, end: layout.ramEnd)
  } else {
    frames.release(start: layout.heapEnd, end: layout.ramEnd)
  }
  return frames
}

/// Page runs for the kernel heap's growth: owned by `.heap`, not zeroed.
private let growKernelHeap: HeapGrowPages = { order in
  kernelPageFrames?.allocPages(order: order, owner: .heap, zeroed: false)
}

/// Boot-time memory set-up, in order: plan the layout after `__end`, build and zero the
/// page array, reserve firmware, kernel, array, heap and DTB pages, free the rest, then
/// `heapInit` at the first byte after the array's last page. Sets `kernelPageFrames`
/// and `kernelHeap`.
///
/// - Returns: the layout; `MemoryMap(kernelPageFrames!)` gives the boot log's map.
/// - Throws: `MemInitError` when RAM is too small or the image lies outside it; nothing
///   is set up then.
/// - Precondition: called once, early, before any allocation.
/// - Complexity: O(pages) (zeroing 16 bytes per page).
@discardableResult
public func memInit(_ config: MemInitConfig) throws(MemInitError) -> BootLayout {
  let layout = try planLayout(config)
  kernelPageFrames = buildPageFrames(config, layout)
  heapInit(
    heapStart: config.pointer(toPhysical: layout.heapStart), size: Int(layout.heapEnd - layout.heapStart), zeroFill: config.zeroFill,
    growPages: growKernelHeap)
  return layout
}
