import KernelSync
import PageFrames

/// The state of one cache of equal-size objects: a kmalloc size class, or an
/// `ObjectCache`. Allocation pops from the current slab's free list, freeing pushes onto
/// the list of the object's own slab; both fast paths touch only this cache and that
/// slab's header. The size classes exist once per CPU slot; an `ObjectCache` is one
/// cache shared by every CPU. Each cache is the state behind its own lock
/// (`SpinLocked<SlabCache>`), held for every change to it or to its slabs, whichever CPU
/// makes it; only its geometry (the `let` fields) is read without the lock.
///
/// Slabs are in one of three places: `current` (allocations come from it), the partial
/// list (slabs with free objects, empty ones included, newest first) or the full list
/// (a free moves a slab from there to the partial list). Only slow paths move slabs. Empty slabs on the partial list beyond
/// `keepEmpty` go back to the page allocator.
struct SlabCache {
  // The fields the fast paths read come first, in the pairs they read together (one
  // load-pair instruction each where the CPU has one).

  /// Allocations left before the sampling detector takes one (`Heap.attach`); without a
  /// pool it starts at `Int.max` and never runs out, so the fast path is the same
  /// with the detector on or off.
  var sampleCountdown = Int.max
  /// Entries in `magazine` (0 ... `magazineSize`); between the countdown, which
  /// kmalloc reads with it, and `current`, which kfree reads with it.
  var magazineCount = 0
  /// Slab being allocated from (its address), or 0.
  var current: UInt = 0
  /// The cache's address and the heap's slab secret mixed (and `Slab.objectCacheMark`
  /// for an object cache): a slab of this cache at `address` carries
  /// `address ^ slabCheckBase` (`Slab.checkWord`).
  let slabCheckBase: UInt
  /// `capacity * slotSize`: offsets from object 0 below this are inside some object.
  let objectsBytes: UInt
  /// Offset of object 0 from the slab's start: the header, rounded to the alignment.
  let firstOffset: Int
  /// floor(2^32 / slotSize) + 1, for `objectIndex`'s division without a divide.
  let reciprocal: UInt64
  /// The magazine: objects of the current slab freed last, handed out first (see
  /// `Heap+Magazine.swift`): `magazineSize` × `magazineEntryWords` words. Only the size
  /// classes use it. With the lock and the fields above it fills the cache's first two
  /// 64-byte lines, which are all the fast paths touch of it.
  var magazine = InlineArray<8, UInt>(repeating: 0)
  let capacity: Int
  /// Mixed into every free-list link this cache stores.
  let secret: UInt
  /// Bytes from one object's start to the next (the object size rounded to the alignment).
  let slotSize: Int
  /// `kindSizeClass` (kmalloc) or `kindObjectCache`.
  let kind: UInt

  /// Newest slab on the partial list, or 0.
  var partial: UInt = 0
  /// Newest slab on the full list, or 0.
  var full: UInt = 0
  /// Empty slabs on the partial list.
  var emptySlabs = 0
  /// Slabs the cache holds: current, partial and full.
  var slabs = 0
  let slabOrder: Int
  /// `checkWord(...)` while the cache exists, 0 once destroyed.
  var check: UInt
  /// Which object cache of its heap this is (1, 2, ...; 0 for the size classes), so a
  /// handle to a destroyed cache never matches a new cache made at the same address.
  let serial: UInt
  let alignment: Int
  let requestedSize: Int
  /// The address of the cache's lock and state: its identity in slab headers.
  let address: UInt

  /// Bytes of one cache with its lock, 64-byte aligned.
  static var cellBytes: Int { (SpinLocked<SlabCache>.byteCount + 63) & ~63 }

  /// Objects a magazine holds: two, so that a size-class cache with its lock stays
  /// within 256 bytes (64 CPU slots of 48 classes take 768 KiB of the heap's first MiB).
  static let magazineSize = 1 << magazineShift
  /// log2 of `magazineSize`: a count is below the size when this shift makes it 0.
  static let magazineShift = 1
  /// Words of one magazine entry: the object's address, its bitmap word's address,
  /// its bit, and its index (a power of two, so that an entry is one shift away).
  static let magazineEntryWords = 4

  static let kindSizeClass: UInt = 0x5c1a
  static let kindObjectCache: UInt = 0x0bca
  /// Empty slabs kept on the partial list before further ones are given back.
  static let keepEmpty = 1
  /// The largest slab for objects up to `smallObjectLimit`: 2^3 pages.
  static let maximumSlabOrder = 3
  /// The largest slab for larger objects: 2^5 pages (31 objects of 4 KiB).
  static let maximumLargeSlabOrder = 5
  /// Objects up to this size take the first slab order that wastes at most a tenth;
  /// larger ones the first that wastes at most a thirty-second (a 96-byte header in a
  /// slab of 2 KiB objects costs a whole object, 6% of a 32 KiB slab but 3% of 64 KiB).
  static let smallObjectLimit = 1024
  /// The largest object an `ObjectCache` takes.
  static let maximumObjectSize = 4096

  /// The layout for objects of `size` bytes at `alignment`: the smallest slab order
  /// (up to 3) that wastes at most a tenth of the slab, else the least wasteful one;
  /// above `smallObjectLimit` the smallest (up to 5) that wastes at most a 32nd.
  /// nil for a size or alignment out of range.
  static func layout(size: Int, alignment: Int) -> (slot: Int, first: Int, capacity: Int, order: Int)? {
    guard size >= 1, size <= maximumObjectSize, alignment >= 16, alignment <= Page.size,
      alignment & (alignment - 1) == 0
    else { return nil }
    let slot = (size + alignment - 1) & ~(alignment - 1)
    let first = (Slab.headerBytes + alignment - 1) & ~(alignment - 1)
    var best: (slot: Int, first: Int, capacity: Int, order: Int)? = nil
    var bestWaste = Int.max
    let large = slot > smallObjectLimit
    let (highest, wasteShare) = large ? (maximumLargeSlabOrder, 32) : (maximumSlabOrder, 10)
    for order in 0...highest {
      let bytes = Page.size << order
      let capacity = min((bytes - first) / slot, Slab.maximumObjects)
      guard capacity >= 1 else { continue }
      let waste = bytes - first - capacity * slot
      // Compare waste as a share of the slab: waste / bytes < bestWaste / bestBytes.
      if best == nil || waste * (Page.size << best!.order) < bestWaste * bytes {
        best = (slot, first, capacity, order)
        bestWaste = waste
      }
      if waste * wasteShare <= bytes { return (slot, first, capacity, order) }
    }
    return best
  }

  /// The check word of a live cache at `address`.
  static func checkWord(address: UInt, heapSecret: UInt, kind: UInt, serial: UInt) -> UInt {
    address ^ heapSecret ^ kind ^ serial << 16
  }

  init(size: Int, alignment: Int, kind: UInt, address: UInt, heapSecret: UInt, serial: UInt = 0) {
    // Callers checked the layout exists.
    let layout = SlabCache.layout(size: size, alignment: alignment)!
    slotSize = layout.slot
    reciprocal = (1 << 32) / UInt64(layout.slot) + 1
    firstOffset = layout.first
    capacity = layout.capacity
    objectsBytes = UInt(layout.capacity * layout.slot)
    slabOrder = layout.order
    secret = SlabCache.mix(heapSecret ^ address)
    slabCheckBase = address ^ heapSecret ^ (kind == SlabCache.kindObjectCache ? Slab.objectCacheMark : 0)
    check = SlabCache.checkWord(address: address, heapSecret: heapSecret, kind: kind, serial: serial)
    self.serial = serial
    self.kind = kind
    self.alignment = alignment
    requestedSize = size
    self.address = address
  }

  /// A free-list link (the next free object's index, or `Slab.noObject`) as stored in
  /// the free object at `slot`; applied to a stored word it decodes it.
  @inline(__always)
  func encode(_ next: UInt, at slot: UInt) -> UInt { next ^ secret ^ slot }

  /// The link word for a free-list index as the header holds it: indices unchanged,
  /// `Slab.noObject` as `Slab.endOfList` (all ones, one compare on the pop path).
  @inline(__always)
  static func link(_ index: UInt32) -> UInt { UInt(bitPattern: Int(Int32(bitPattern: index))) }

  /// The index of the object starting at `address` in `slab`, or nil when `address` is
  /// not an object start there (inside the header, past the last object, or inside an
  /// object).
  @inline(__always)
  func objectIndex(_ address: UInt, in slab: Slab) -> Int? {
    SlabCache.objectIndex(address, in: slab, firstOffset: firstOffset, objectsBytes: objectsBytes, reciprocal: reciprocal)
  }

  /// `objectIndex` from the cache's geometry.
  @inline(__always)
  static func objectIndex(_ address: UInt, in slab: Slab, firstOffset: Int, objectsBytes: UInt, reciprocal: UInt64) -> Int? {
    // No arithmetic here can wrap: offsets and indices are below a slab's size.
    let offset = address &- (slab.address &+ UInt(bitPattern: firstOffset))
    guard offset < objectsBytes else { return nil }
    // With offset = q * slotSize + r, r < slotSize, and reciprocal = (2^32 + e) / slotSize
    // (1 <= e <= slotSize), offset * reciprocal = q * 2^32 + q * e + r * reciprocal:
    // its high half is q, and its low half is q * e < 2^17 (offsets are below 2^17)
    // when r = 0, and at least `reciprocal` (> 2^20, slots are at most 4 KiB) otherwise,
    // without reaching 2^32. One multiply divides and tests for an object start.
    let product = UInt64(offset) &* reciprocal
    guard UInt32(truncatingIfNeeded: product) < UInt32(truncatingIfNeeded: reciprocal) else { return nil }
    return Int(truncatingIfNeeded: product >> 32)
  }

  /// The address of object `index` of `slab`.
  @inline(__always)
  func objectAddress(_ index: Int, in slab: Slab) -> UInt {
    slab.address &+ UInt(bitPattern: firstOffset &+ index &* slotSize)
  }

  /// SplitMix64's finaliser: spreads a seed over every bit.
  static func mix(_ value: UInt) -> UInt {
    var z = UInt64(truncatingIfNeeded: value) &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return UInt(truncatingIfNeeded: z ^ (z >> 31))
  }
}
