import KernelHeap
import KernelSync
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
  /// RAM and firmware's reservations: the one description of memory memInit lays out.
  public var memory: BootMemory
  /// `__kernel_start`.
  public var kernelStart: UInt
  /// `__end` (page aligned).
  public var kernelEnd: UInt
  /// RAM at or above this address (rounded down to a page) is out of the early identity
  /// map's reach: it is dropped (and reported) instead of being handed out. nil: no limit.
  public var mappedLimit: UInt?
  /// Bytes of the initial heap (rounded up to pages).
  public var heapBytes: Int
  /// The most bytes the heap may hold, growth and large allocations included; nil for
  /// all of RAM.
  public var growthCeiling: Int?
  /// pointer = physical + directMapOffset (0 in the kernel).
  public var directMapOffset: Int
  /// Zeroes page runs and the page array: the fastest way the machine has (`bzero`).
  /// nil (a C function pointer the kernel never set, say) is refused with `noZeroFill`.
  public var zeroFill: ZeroFill?
  /// Mixed into the heap's slab secret (`Heap.init(secretSeed:)`): a boot-time counter,
  /// say. 0 leaves the secret to the heap's address alone.
  public var secretSeed: UInt = 0
  /// Whether RAM below the kernel image is firmware's (true, the default: reserved as
  /// `.firmware`, as on boards whose firmware leaves its stubs and tables there without
  /// saying so) or free unless a reservation says otherwise (false: firmware that
  /// describes everything it keeps in its device tree's reservations).
  public var reservesMemoryBelowKernel = true
  /// CPU slots of the page frames' and the heap's per-CPU parts: a power of two in
  /// 1 ... `CPU.maximum`. nil (the default): `CPU.slots`, one per installed CPU.
  public var cpuSlots: Int? = nil
  /// Why the one-range description could not be built (`planLayout` throws it).
  private var refusal: MemInitError? = nil

  /// A configuration over RAM and reservations firmware reported (`memory`), for a
  /// kernel image `[kernelStart, kernelEnd)`.
  /// - Complexity: O(1).
  public init(
    memory: BootMemory, kernelStart: UInt, kernelEnd: UInt, heapBytes: Int = kernelHeapInitialBytes,
    mappedLimit: UInt? = nil, directMapOffset: Int = 0, growthCeiling: Int? = nil, zeroFill: ZeroFill?
  ) {
    self.memory = memory
    self.kernelStart = kernelStart
    self.kernelEnd = kernelEnd
    self.heapBytes = heapBytes
    self.mappedLimit = mappedLimit
    self.directMapOffset = directMapOffset
    self.growthCeiling = growthCeiling
    self.zeroFill = zeroFill
  }

  /// A configuration over one RAM range `[ramBase, ramBase + ramSize)` with the DTB's
  /// range reserved (it may be empty); the heap defaults to 1 MiB. A range `BootMemory`
  /// refuses (misaligned, wrapping) is thrown by `planLayout`.
  /// - Complexity: O(1).
  public init(
    ramBase: UInt, ramSize: UInt, kernelStart: UInt, kernelEnd: UInt,
    dtbStart: UInt = 0, dtbEnd: UInt = 0, heapBytes: Int = kernelHeapInitialBytes,
    directMapOffset: Int = 0, growthCeiling: Int? = nil, zeroFill: ZeroFill?
  ) {
    var memory = BootMemory()
    var refusal: MemInitError? = nil
    do throws(MemInitError) {
      try memory.addRAM(start: ramBase, size: ramSize)
      try memory.reserve(start: dtbStart, end: max(dtbEnd, dtbStart), as: .deviceTree)
    } catch {
      refusal = error
    }
    self.init(
      memory: memory, kernelStart: kernelStart, kernelEnd: kernelEnd, heapBytes: heapBytes,
      directMapOffset: directMapOffset, growthCeiling: growthCeiling, zeroFill: zeroFill)
    self.refusal = refusal
  }

  /// The refusal of the one-range description, if any.
  var descriptionError: MemInitError? { refusal }

  /// Pointer through the direct map to physical address `physical`.
  func pointer(toPhysical physical: UInt) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: Int(bitPattern: physical) &+ directMapOffset)!
  }
}

/// Why memInit refused to lay out memory. Nothing is set up when one is thrown.
public typealias MemInitError = MemoryError<MemInitFailure>

/// The defined outcomes for a configuration memInit cannot use, in the order checked.
public enum MemInitFailure: UInt8, FailureReason {
  /// RAM base or size not page aligned, or empty.
  case ramMisaligned
  /// A RAM range passes 2^64 or ends exactly at it (or a `reg` entry's does).
  case ramWraps
  /// More RAM ranges than `PhysicalRanges.capacity` (64).
  case tooManyRanges
  /// More than `PageFrameAllocator.maximumPages` (2^32 - 2) pages of RAM: page indices
  /// are 32 bits.
  case tooManyPages
  /// More reservations than `BootMemory.reservationCapacity` (128).
  case tooManyReservations
  /// The kernel image does not lie inside one RAM range (ranges that touch are one).
  case kernelOutsideRAM
  /// A DTB or firmware reservation overlaps the kernel image.
  case reservationOverlapsKernel
  /// The device tree's header is not one: wrong magic.
  case deviceTreeBadMagic
  /// The device tree's version is not one this reader understands (16 or 17).
  case deviceTreeBadVersion
  /// A structure, string or reservation block, a property or a name runs past the blob.
  case deviceTreeTruncated
  /// `#address-cells` or `#size-cells` is 0 (for a `reg` that needs it) or above 2.
  case deviceTreeBadCells
  /// The heap size cannot hold a heap: 0, negative, or below `Heap.minimumBytes`.
  case heapTooSmall
  /// RAM itself is too small: even without firmware's reservations, no RAM after the
  /// kernel image holds page array + heap. `needed` and `available` give the bytes.
  case ramTooSmall
  /// The kernel's memory is set up already: `memInit` runs once.
  case alreadySetUp
  /// The configuration describes no RAM at all.
  case noRAM
  /// The configuration's `zeroFill` is nil.
  case noZeroFill
  /// The configuration's `cpuSlots` is not a power of two in 1 ... `CPU.maximum`.
  case badCPUSlots
  /// A reservation ends before it starts: its size passed 2^64.
  case reservationWraps
  /// RAM would hold page array + heap after the kernel image, but firmware's
  /// reservations leave no stretch large enough. `needed` and `available` give the bytes.
  case reservationsFillRAM
  /// A reservation's owner is neither a reserved kind nor `.heap` (`.free`, `.allocated`).
  case badReservationOwner
  /// The device tree's blob passes or ends at 2^64 (`physicalAddress + totalsize`).
  case deviceTreeOutsideAddressSpace
  /// The configuration's `directMapOffset` is not a multiple of the page size.
  case directMapMisaligned
  /// The page array refused a step of the plan `planLayout` made (a layout built for
  /// another configuration, say): set-up stops there, nothing is handed out.
  case setUpInconsistent

  public var text: StaticString {
    switch self {
    case .ramMisaligned: return "RAM base or size not page aligned"
    case .ramWraps: return "RAM range wraps past or ends at 2^64"
    case .tooManyRanges: return "more RAM ranges than the model holds"
    case .tooManyPages: return "more than 2^32 - 2 pages of RAM"
    case .tooManyReservations: return "more reservations than the model holds"
    case .kernelOutsideRAM: return "kernel image outside RAM"
    case .reservationOverlapsKernel: return "reserved range overlaps the kernel image"
    case .deviceTreeBadMagic: return "device tree: bad magic"
    case .deviceTreeBadVersion: return "device tree: unsupported version"
    case .deviceTreeTruncated: return "device tree: truncated or out-of-bounds offset"
    case .deviceTreeBadCells: return "device tree: #address-cells or #size-cells out of range"
    case .heapTooSmall: return "heap size cannot hold a heap"
    case .ramTooSmall: return "RAM smaller than kernel + page array + heap"
    case .alreadySetUp: return "memory set up already (memInit runs once)"
    case .noRAM: return "no RAM described"
    case .noZeroFill: return "no zero-fill function (zeroFill is nil)"
    case .badCPUSlots: return "CPU slots not a power of two in 1 ... CPU.maximum"
    case .reservationWraps: return "reservation wraps past 2^64 (end before start)"
    case .reservationsFillRAM: return "reservations leave no room for page array + heap"
    case .badReservationOwner: return "reservation owner not a reserved kind or heap"
    case .deviceTreeOutsideAddressSpace: return "device tree: blob passes or ends at 2^64"
    case .directMapMisaligned: return "directMapOffset not a multiple of the page size"
    case .setUpInconsistent: return "page array refused the planned layout"
    }
  }
}

/// Bytes memInit reserves for the initial heap.
public let kernelHeapInitialBytes = 1 << 20

/// Where memInit puts things: all physical, page aligned.
public struct BootLayout: Sendable {
  /// RAM pages the page allocator manages: every range, after the mapped limit.
  public let pageCount: Int
  /// Start of the page metadata array: the first fit after `__end`.
  public let metadataStart: UInt
  /// One past the array's last page.
  public let metadataEnd: UInt
  /// Start of the initial heap: `metadataEnd`.
  public let heapStart: UInt
  /// One past the initial heap's last page.
  public let heapEnd: UInt
  /// One past the highest RAM byte managed.
  public let ramEnd: UInt
  /// RAM and every reservation: firmware's, then low memory, kernel, page array, heap.
  public let memory: BootMemory
  /// RAM pages of the description (merged ranges), before anything was clamped. Counted
  /// from the same `BootMemory` the layout is built from, so it is not an independent
  /// check: the kernel checks its boot map against firmware's raw total instead
  /// (`DeviceTree.reportedRAMBytes()`, or the mailbox's sizes).
  public let reportedRAMPages: Int
  /// The configuration's zero fill, checked present.
  public let zeroFill: ZeroFill
  /// CPU slots of the page frames and the heap (the configuration's, or `CPU.slots`).
  public let cpuSlots: Int
}

/// Computes the layout without touching memory: the array at the first page boundary
/// after `__end` where it and the heap fit around every reservation, the heap right after
/// the array's last page. Every RAM byte below the kernel image in its range (ranges that
/// touch are one, see `BootMemory.addRAM`) is firmware's low memory, reserved as
/// `.firmware`, so nothing between a range's start and the kernel is handed out unless
/// it is in another range.
///
/// - Throws: `MemInitError`, in this order: the one-range description's refusal,
///   `noRAM`, `noZeroFill`, `directMapMisaligned`, `kernelOutsideRAM` (after dropping RAM
///   above `mappedLimit`), `reservationOverlapsKernel`, `heapTooSmall`, then
///   `ramTooSmall` (RAM after the kernel cannot hold array + heap even without
///   firmware's reservations) or `reservationsFillRAM` (it could, but the reservations
///   leave no stretch large enough); both at the end of RAM, with `needed` (array +
///   heap bytes, `UInt.max` when that sum passes 2^64) and `available` (the largest free
///   stretch after the kernel).
/// - Complexity: O(ranges × reservations²).
public func planLayout(_ config: MemInitConfig) throws(MemInitError) -> BootLayout {
  if let refusal = config.descriptionError { throw refusal }
  var memory = config.memory
  guard memory.ram.count > 0 else { throw MemInitError(.noRAM, 0) }
  guard let zeroFill = config.zeroFill else { throw MemInitError(.noZeroFill, 0) }
  let cpuSlots = config.cpuSlots ?? CPU.slots
  guard cpuSlots >= 1, cpuSlots <= CPU.maximum, cpuSlots & (cpuSlots - 1) == 0 else {
    throw MemInitError(.badCPUSlots, UInt(bitPattern: cpuSlots))
  }
  let offset = UInt(bitPattern: config.directMapOffset)
  guard Page.isAligned(offset) else { throw MemInitError(.directMapMisaligned, offset) }
  let reportedRAMPages = memory.ram.totalPages
  if let limit = config.mappedLimit { memory.clamp(above: limit) }
  guard config.kernelStart <= config.kernelEnd, let kernelRange = memory.ramRange(containing: config.kernelStart),
    config.kernelEnd <= kernelRange.end
  else { throw MemInitError(.kernelOutsideRAM, config.kernelStart) }
  let kernel = PhysicalRange(start: config.kernelStart, end: config.kernelEnd)
  if let clash = memory.firstReservation(overlapping: kernel) {
    throw MemInitError(.reservationOverlapsKernel, clash.range.start)
  }
  guard config.heapBytes >= Heap.minimumBytes else {
    throw MemInitError(.heapTooSmall, UInt(bitPattern: config.heapBytes))
  }
  let pageCount = memory.ram.totalPages
  let ramEnd = memory.ram[memory.ram.count - 1].end
  // Low memory below the kernel (unless firmware describes its own) and the kernel
  // itself, then the first fit after __end
  // that overlaps nothing: the page array, and the heap right after it.
  if config.reservesMemoryBelowKernel {
    try memory.reservePlanned(start: kernelRange.start, end: config.kernelStart, as: .firmware)
  }
  try memory.reservePlanned(start: config.kernelStart, end: config.kernelEnd, as: .kernel)
  // Each step is checked, so no configuration can wrap an address.
  let metadataBytes = Page.roundUp(UInt(PageFrameAllocator.metadataBytes(pageCount: pageCount, slots: cpuSlots)))
  let heapBytes = Page.roundUp(UInt(config.heapBytes))
  var needed = UInt.max
  if let metadataBytes, let heapBytes, case let (sum, overflow) = metadataBytes.addingReportingOverflow(heapBytes), !overflow {
    needed = sum
  }
  guard needed != UInt.max, let metadataBytes, let metadataStart = memory.firstFit(bytes: needed, from: config.kernelEnd)
  else { throw shortfall(memory, needed: needed, after: config.kernelEnd, ramEnd: ramEnd) }
  let metadataEnd = metadataStart + metadataBytes
  let heapEnd = metadataStart + needed
  try memory.reservePlanned(start: metadataStart, end: metadataEnd, as: .metadata)
  try memory.reservePlanned(start: metadataEnd, end: heapEnd, as: .heap)
  return BootLayout(
    pageCount: pageCount, metadataStart: metadataStart, metadataEnd: metadataEnd,
    heapStart: metadataEnd, heapEnd: heapEnd, ramEnd: ramEnd, memory: memory, reportedRAMPages: reportedRAMPages,
    zeroFill: zeroFill, cpuSlots: cpuSlots)
}

/// Why `needed` bytes found no place after `after`: `ramTooSmall` when no RAM range
/// holds them past `after` even with no reservation, else `reservationsFillRAM`.
private func shortfall(_ memory: BootMemory, needed: UInt, after: UInt, ramEnd: UInt) -> MemInitError {
  let from = Page.roundUp(after) ?? UInt.max
  var largestRAM: UInt = 0
  for index in 0..<memory.ram.count where memory.ram[index].end > from {
    largestRAM = max(largestRAM, memory.ram[index].end - max(memory.ram[index].start, from))
  }
  let available = memory.largestFreeRun(from: after)
  let reason: MemInitFailure = needed <= largestRAM ? .reservationsFillRAM : .ramTooSmall
  return MemInitError(reason, ramEnd, needed: needed, available: available)
}

/// Builds the page metadata array and the page allocator for `layout` (from
/// `planLayout(config)`): one array over every RAM range, zeroed (bzero in the kernel);
/// low-memory firmware pages reserved first, then every other reservation in order (a
/// later one relabels an earlier one's pages: the DTB inside low memory, say); then
/// exactly RAM minus reservations handed to the free lists.
///
/// - Throws: `MemInitError`: `directMapMisaligned` for a `config.directMapOffset` that
///   is not page aligned; `setUpInconsistent` when the allocator refuses a step of the
///   plan (its ranges, a reservation, or fewer pages freed than the plan counts), which
///   cannot happen for a layout `planLayout(config)` made: set-up stops there.
/// - Complexity: O(pages) for zeroing the array; the rest is O(reserved pages + RAM / 4 MiB).
public func buildPageFrames(_ config: MemInitConfig, _ layout: BootLayout) throws(MemInitError) -> PageFrameAllocator {
  let memory = layout.memory
  let offset = UInt(bitPattern: config.directMapOffset)
  guard Page.isAligned(offset) else { throw MemInitError(.directMapMisaligned, offset) }
  guard let frames = PageFrameAllocator(
    ranges: memory.ram, metadata: config.pointer(toPhysical: layout.metadataStart),
    directMapOffset: config.directMapOffset, zeroFill: layout.zeroFill, slots: layout.cpuSlots)
  else { throw MemInitError(.setUpInconsistent, layout.metadataStart) }
  for pass in 0..<2 {
    for index in 0..<memory.reservationCount {
      let reservation = memory.reservation(index)
      guard (reservation.owner == .firmware) == (pass == 0) else { continue }
      if case .failure(let error) = frames.reserve(start: reservation.range.start, end: reservation.range.end, as: reservation.owner) {
        throw MemInitError(.setUpInconsistent, error.address)
      }
    }
  }
  var freed = 0
  memory.forEachFreeRange { freed += frames.releaseUnchecked(start: $0.start, end: $0.end) }
  guard freed == memory.freePages else { throw MemInitError(.setUpInconsistent, layout.metadataStart) }
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
    zeroFill: layout.zeroFill, frames: frames, growthCeiling: config.growthCeiling, slots: layout.cpuSlots,
    secretSeed: config.secretSeed)
  else { throw MemInitError(.heapTooSmall, UInt(bitPattern: config.heapBytes)) }
  return heap
}
