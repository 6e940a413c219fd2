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
  /// Bytes of the initial heap (rounded up to pages).
  public var heapBytes: Int
  /// The most bytes the heap may hold, growth and large allocations included; nil for
  /// all of RAM.
  public var growthCeiling: Int?
  /// pointer = physical + directMapOffset (0 in the kernel).
  public var directMapOffset: Int
  public var zeroFill: ZeroFill

  /// A configuration; the DTB range may be empty and the heap defaults to 1 MiB.
  /// - Precondition: none here; `planLayout` checks the values.
  /// - Complexity: O(1).
  public init(
    ramBase: UInt, ramSize: UInt, kernelStart: UInt, kernelEnd: UInt,
    dtbStart: UInt = 0, dtbEnd: UInt = 0, heapBytes: Int = kernelHeapInitialBytes,
    directMapOffset: Int = 0, growthCeiling: Int? = nil, zeroFill: ZeroFill
  ) {
    self.growthCeiling = growthCeiling
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

/// Why memInit refused to lay out memory. Nothing is set up when one is thrown.
public typealias MemInitError = MemoryError<MemInitFailure>

/// The defined outcomes for a configuration memInit cannot use, in the order checked.
public enum MemInitFailure: UInt8, FailureReason {
  /// RAM base or size not page aligned, empty, or wrapping past 2^64.
  case ramMisaligned
  /// The kernel image does not lie inside RAM.
  case kernelOutsideRAM
  /// The heap size cannot hold a heap: 0, negative, or below `Heap.minimumBytes`.
  case heapTooSmall
  /// RAM is smaller than kernel + page array + heap.
  case ramTooSmall

  public var text: StaticString {
    switch self {
    case .ramMisaligned: return "RAM base or size not page aligned"
    case .kernelOutsideRAM: return "kernel image outside RAM"
    case .heapTooSmall: return "heap size cannot hold a heap"
    case .ramTooSmall: return "RAM smaller than kernel + page array + heap"
    }
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
/// - Throws: `MemInitError`: misaligned or wrapping RAM, a kernel outside RAM, a heap
///   size that cannot hold a heap, or RAM that cannot hold kernel + array + heap.
/// - Complexity: O(1).
public func planLayout(_ config: MemInitConfig) throws(MemInitError) -> BootLayout {
  guard Page.isAligned(config.ramBase), Page.isAligned(config.ramSize), config.ramSize > 0 else {
    throw MemInitError(.ramMisaligned, config.ramBase)
  }
  let (ramEnd, wrapped) = config.ramBase.addingReportingOverflow(config.ramSize)
  guard !wrapped else { throw MemInitError(.ramMisaligned, config.ramBase) }
  guard config.kernelStart >= config.ramBase, config.kernelStart <= config.kernelEnd, config.kernelEnd <= ramEnd else {
    throw MemInitError(.kernelOutsideRAM, config.kernelStart)
  }
  guard config.heapBytes >= Heap.minimumBytes else {
    throw MemInitError(.heapTooSmall, UInt(bitPattern: config.heapBytes))
  }
  let pageCount = Int(config.ramSize >> UInt(Page.shift))
  let metadataBytes = UInt(PageFrameAllocator.metadataBytes(pageCount: pageCount))
  // Each step is checked, so no configuration can wrap an address.
  guard let metadataStart = Page.roundUp(config.kernelEnd),
    case let (arrayEnd, overArray) = metadataStart.addingReportingOverflow(metadataBytes), !overArray,
    let metadataEnd = Page.roundUp(arrayEnd),
    case let (heapLimit, overHeap) = metadataEnd.addingReportingOverflow(UInt(config.heapBytes)), !overHeap,
    let heapEnd = Page.roundUp(heapLimit), heapEnd <= ramEnd
  else { throw MemInitError(.ramTooSmall, ramEnd) }
  return BootLayout(
    pageCount: pageCount, metadataStart: metadataStart, metadataEnd: metadataEnd,
    heapStart: metadataEnd, heapEnd: heapEnd, ramEnd: ramEnd)
}

/// Builds the page metadata array and the page allocator for `config`: zeroes the array
/// (bzero in the kernel), reserves firmware, kernel, array, heap and DTB pages in that
/// order, and hands every other page to the free lists.
///
/// - Complexity: O(pages) for zeroing the array; the rest is O(reserved pages + RAM / 4 MiB).
public func buildPageFrames(_ config: MemInitConfig, _ layout: BootLayout) -> PageFrameAllocator {
  let frames = PageFrameAllocator(
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
  let dtbPageStart = Page.roundDown(config.dtbStart)
  if config.dtbEnd > config.dtbStart && dtbPageStart >= layout.heapEnd {
    frames.release(start: layout.heapEnd, end: dtbPageStart)
    frames.release(start: config.dtbEnd, end: layout.ramEnd)
  } else {
    frames.release(start: layout.heapEnd, end: layout.ramEnd)
  }
  return frames
}

/// Sets up the kernel heap over the reserved heap pages `[layout.heapStart,
/// layout.heapEnd)`, the first byte after the page array: its initial arena. It grows
/// from `frames` up to `config.growthCeiling` (all of RAM by default).
///
/// - Throws: `MemInitError.heapTooSmall` when the range cannot hold a heap.
/// - Complexity: O(size classes).
public func heapInit(_ config: MemInitConfig, _ layout: BootLayout, frames: PageFrameAllocator) throws(MemInitError) -> Heap {
  guard let heap = Heap(
    start: config.pointer(toPhysical: layout.heapStart), size: Int(layout.heapEnd - layout.heapStart),
    zeroFill: config.zeroFill, frames: frames, growthCeiling: config.growthCeiling)
  else { throw MemInitError(.heapTooSmall, UInt(bitPattern: config.heapBytes)) }
  return heap
}

extension KernelMemory {
  /// Builds the kernel's memory for `config` laid out as `layout`: the page array and
  /// its reservations, then `heapInit` right after it.
  /// - Throws: `MemInitError` from `heapInit`.
  /// - Complexity: O(pages) (zeroing 16 bytes per page).
  public init(_ config: MemInitConfig, layout: BootLayout) throws(MemInitError) {
    let frames = buildPageFrames(config, layout)
    let heap = try heapInit(config, layout, frames: frames)
    self.init(frames: frames, heap: heap)
  }
}

/// Boot-time memory set-up, in order: plan the layout after `__end`, build and zero the
/// page array, reserve firmware, kernel, array, heap and DTB pages, free the rest, then
/// `heapInit` at the first byte after the array's last page. Installs the result as
/// `kernelMemory`.
///
/// - Returns: the layout; `MemoryMap(kernelMemory.frames)` gives the boot log's map.
/// - Throws: `MemInitError` when RAM is too small, the image lies outside it or the
///   heap size is unusable; `kernelMemory` is left not set up then, so every entry
///   point reports it.
/// - Precondition: called once, early, before any allocation.
/// - Complexity: O(pages) (zeroing 16 bytes per page).
@discardableResult
public func memInit(_ config: MemInitConfig) throws(MemInitError) -> BootLayout {
  kernelMemory = KernelMemory()
  let layout = try planLayout(config)
  kernelMemory = try KernelMemory(config, layout: layout)
  return layout
}
