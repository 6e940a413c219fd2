import KernelSync
import KernelSyncAtomics
import PageFrames

/// One set of translation tables (4 KiB pages, 512 entries a table) in the descriptor
/// format `format` gives, built from page frames, with one lock: `map`, `unmap`,
/// `protect` and `translate`, safe on every CPU at once.
///
/// - Table pages come from the page frames with owner `.pageTable`; each keeps its
///   number of valid entries in its page entry's tag, and goes back to the frames when
///   it empties, after the TLB invalidation that covers it.
/// - `map` uses 1 GiB and 2 MiB blocks wherever the virtual and physical addresses and
///   the length allow. `unmap` and `protect` of part of a block split it into the next
///   level's table with break-before-make.
/// - TLB maintenance is batched per call: up to `invalidationBatch` per-page
///   invalidations, past that one full flush, as Zircon's address spaces do.
///
/// A handle: the lock and the state live in a page taken from the frames at `init`, so
/// copies are the same address space. `destroy` gives every page back.
public struct AddressSpace: @unchecked Sendable {
  /// Per-page invalidations one call queues before it settles for a full flush.
  public static let invalidationBatch = 16
  /// Empty table pages a space keeps for its next tables instead of giving them back
  /// to the frames at once (a map+unmap pair then costs no page allocation).
  public static let tablePoolLimit = 8

  /// The frames the tables (and vmalloc pages) come from.
  public let frames: PageFrameAllocator
  /// The barriers and invalidations issued after a change.
  public let maintenance: TranslationMaintenance
  /// Physical address of the root table (at `format.firstLevel`): what the MMU's
  /// translation-base register is given.
  public let root: UInt
  let locked: SpinLocked<SpaceState>
  /// Where the format lies: in the state page, after the lock and the state, so the
  /// handle stays a few words (it is copied wherever a copy of the space is taken).
  let formatAddress: UnsafePointer<TranslationFormat>

  /// How the descriptors are encoded, and the addresses the tables cover.
  public var format: TranslationFormat {
    @inline(__always) unsafeAddress { formatAddress }
  }

  /// Bytes from the state page's start to the format.
  static var formatOffset: Int {
    let alignment = MemoryLayout<TranslationFormat>.alignment
    return (SpinLocked<SpaceState>.byteCount + alignment - 1) / alignment * alignment
  }

  /// A new, empty address space with tables in `format`: a root table and a page for
  /// the lock and state.
  /// - Throws: `outOfMemory` when the frames have no two pages (nothing is taken).
  /// - Complexity: O(1) plus zeroing two pages.
  public init(frames: PageFrameAllocator, maintenance: TranslationMaintenance, format: TranslationFormat)
    throws(VirtualMemoryError)
  {
    guard let header = frames.allocPages(order: 0, owner: .pageTable) else {
      throw VirtualMemoryError(.outOfMemory, 0)
    }
    guard let rootPage = frames.allocPages(order: 0, owner: .pageTable) else {
      try? frames.freePages(header, order: 0, owner: .pageTable)
      throw VirtualMemoryError(.outOfMemory, 0)
    }
    self.frames = frames
    self.maintenance = maintenance
    root = frames.physical(of: rootPage)
    locked = SpinLocked(initializing: header, to: SpaceState(root: root))
    assert(AddressSpace.formatOffset + MemoryLayout<TranslationFormat>.size <= Page.size)
    let formatStorage = (header + AddressSpace.formatOffset).bindMemory(to: TranslationFormat.self, capacity: 1)
    formatStorage.initialize(to: format)
    formatAddress = UnsafePointer(formatStorage)
  }

  /// What the tables hold, and the maintenance they have cost so far.
  public var statistics: AddressSpaceStatistics {
    let state = locked.snapshot.pointee
    return AddressSpaceStatistics(
      tablePages: state.tablePages, mappedBytes: state.mappedBytes, pageInvalidations: state.pageInvalidations,
      fullFlushes: state.fullFlushes, blockSplits: state.blockSplits, vmallocAreas: state.areaCount,
      pooledTablePages: state.tablePoolCount)
  }

  /// Where `virtualAddress` leads: the physical address, the attributes and the size of
  /// the block or page that maps it; nil when it is not mapped (or out of range).
  /// - Complexity: O(levels), under the lock.
  public func translate(_ virtualAddress: UInt) -> AddressTranslation? {
    locked.withLock(cpu: CPU.current) { _ in walk(virtualAddress) } ?? walk(virtualAddress)
  }

  /// `translate` without the lock, for exception reports (a CPU that faulted inside
  /// `map` holds it): a racy read that may see a change half done. It follows a table
  /// descriptor only to a page the frames say is a page table, so a table freed and
  /// reused under it never leads the walk outside RAM or into a device.
  /// - Complexity: O(levels × log ranges).
  public func translateUnlocked(_ virtualAddress: UInt) -> AddressTranslation? { walk(virtualAddress, checked: true) }

  /// Gives back every table page, the vmalloc pages and area list, and the state page.
  /// Nothing may use the space afterwards, through any copy.
  /// - Precondition: no CPU translates through these tables any more (the MMU's
  ///   translation base points elsewhere).
  /// - Complexity: O(table pages + vmalloc pages).
  public func destroy() {
    let header = locked.address
    _ = locked.withLock(cpu: CPU.current) { state in
      freeVmallocAreas(&state)
      freeTables(root, level: format.firstLevel)
      drainPool(&state)
    }
    try? frames.freePages(table(root), order: 0, owner: .pageTable)
    try? frames.freePages(header, order: 0, owner: .pageTable)
  }

  /// Gives the empty table pages the space keeps for reuse back to the frames (as the
  /// allocators' `drainCaches` gives their caches back).
  /// - Complexity: O(`tablePoolLimit`), under the lock.
  public func releasePooledTables() {
    _ = locked.withLock(cpu: CPU.current) { state in drainPool(&state) }
  }

  // MARK: Tables

  @inline(__always)
  func table(_ physical: UInt) -> UnsafeMutablePointer<UInt64> {
    frames.pointer(toPhysical: physical).assumingMemoryBound(to: UInt64.self)
  }

  @inline(__always)
  func load(_ table: UInt, _ index: Int) -> UInt64 { ks_load_relaxed64(self.table(table) + index) }

  @inline(__always)
  func store(_ table: UInt, _ index: Int, _ bits: UInt64) { ks_store_relaxed64(self.table(table) + index, bits) }

  /// The valid-entry count of table page `table` (its page entry's tag).
  @inline(__always)
  func entryCount(_ table: UInt) -> Int {
    guard let index = frames.pageIndex(ofPhysical: table) else { return 0 }
    return Int(ks_load_relaxed32(frames.tagWord(ofPage: index)))
  }

  @inline(__always)
  func adjustCount(_ table: UInt, by delta: Int) {
    guard let index = frames.pageIndex(ofPhysical: table) else { return }
    let word = frames.tagWord(ofPage: index)
    ks_store_relaxed32(word, UInt32(truncatingIfNeeded: Int(ks_load_relaxed32(word)) + delta))
  }

  /// The leaf that maps `address`, found from the root. `checked`: follow a table
  /// descriptor only to a `.pageTable` page of the frames (the unlocked walk).
  func walk(_ address: UInt, checked: Bool = false) -> AddressTranslation? {
    guard let (bits, level) = leaf(address, checked: checked) else { return nil }
    let span = TranslationFormat.span(level: level)
    return AddressTranslation(
      physical: format.address(bits) | address & (span - 1), attributes: format.attributes(ofLeaf: bits), bytes: span)
  }

  /// The leaf descriptor that maps `address` and its level, or nil where nothing does.
  func leaf(_ address: UInt, checked: Bool = false) -> (bits: UInt64, level: Int)? {
    guard address < format.addressLimit else { return nil }
    var current = root
    var level = format.firstLevel
    // Tables down to the leaf; level 3 holds no table, so the walk ends there at most.
    while true {
      let bits = load(current, TranslationFormat.index(address, level: level))
      guard format.isTable(bits, level: level) else { return format.isLeaf(bits, level: level) ? (bits, level) : nil }
      current = format.address(bits)
      if checked && frames.owner(ofPhysical: current) != .pageTable { return nil }
      level += 1
    }
  }

  /// Frees every table below `table` (not `table` itself), without maintenance.
  func freeTables(_ table: UInt, level: Int) {
    guard level < 3 else { return }
    for index in 0..<TranslationFormat.entries {
      let bits = load(table, index)
      guard format.isTable(bits, level: level) else { continue }
      let child = format.address(bits)
      freeTables(child, level: level + 1)
      adjustCount(child, by: -entryCount(child))
      try? frames.freePages(self.table(child), order: 0, owner: .pageTable)
    }
  }
}

/// What `translate` finds for an address.
public struct AddressTranslation: Equatable, Sendable {
  /// The physical address the virtual one leads to.
  public let physical: UInt
  /// What the mapping allows.
  public let attributes: MapAttributes
  /// Bytes of the leaf that maps it: 4 KiB, 2 MiB or 1 GiB.
  public let bytes: UInt
}

/// Counts for an address space (`AddressSpace.statistics`).
public struct AddressSpaceStatistics: Equatable, Sendable {
  /// Table pages, the root included.
  public let tablePages: Int
  /// Bytes mapped.
  public let mappedBytes: UInt
  /// Per-page invalidations issued (block splits, memory-type changes and batched
  /// invalidations).
  public let pageInvalidations: Int
  /// Full flushes issued (batches past `invalidationBatch`).
  public let fullFlushes: Int
  /// Blocks split into the next level's table.
  public let blockSplits: Int
  /// vmalloc areas and stacks live.
  public let vmallocAreas: Int
  /// Empty table pages kept for reuse (not in `tablePages`).
  public let pooledTablePages: Int
}

/// The state under an address space's lock.
struct SpaceState {
  let root: UInt
  var tablePages = 1
  var mappedBytes: UInt = 0
  var pageInvalidations = 0
  var fullFlushes = 0
  var blockSplits = 0
  /// Empty table pages kept for reuse (`tablePoolLimit`), linked through entry 0.
  var tablePool: UInt = 0
  var tablePoolCount = 0
  // vmalloc (AddressSpace+Vmalloc.swift): the range, and the areas sorted by start in
  // a page run of `areaOrder`.
  var vmallocBase: UInt = 0
  var vmallocLimit: UInt = 0
  var areas: UnsafeMutablePointer<VmallocArea>? = nil
  var areaCount = 0
  var areaOrder = -1

  init(root: UInt) { self.root = root }

  var areaCapacity: Int { areaOrder < 0 ? 0 : (Page.size << areaOrder) / MemoryLayout<VmallocArea>.stride }
}
