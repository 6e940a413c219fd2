import KernelSync

/// One slab: a naturally aligned run of 2^order pages owned by `.slab`, holding
/// objects of one cache back to back after this header. Objects carry no header.
///
///     +0   check      address ^ cache ^ the heap's secret: a slab header that was
///                     overwritten (or a forged one) fails it
///     +8   cache      the `SlabCache` the slab belongs to
///     +16  headIndex  the index of the first free object, `noObject` when none (UInt32)
///     +20  inUse      objects handed out (UInt32; beside the head, so that a fast path
///                     reads and writes the two with one load pair and one store pair)
///     +24  next       links of the partial or full list (slab addresses)
///     +32  previous
///     +40  4 bytes unused
///     +44  fresh      objects never handed out yet start at this index (UInt16)
///     +46  list       where the slab is: `listFull`, `listPartial`, `listCurrent` (UInt8)
///     +47  quarantined  1 when its free list was found overwritten and cut (UInt8)
///     +48  bitmap     4 x 64 bits, bit i set <=> object i is allocated
///     +80  16 bytes unused
///     +96  objects (at the cache's `firstOffset`)
///
/// The free list is a list of object indices: the header holds the first, and each free
/// object holds the next one's, encoded (`SlabCache.encode`), in its first 8 bytes. An
/// index needs no division to become an address or a bitmap bit on the fast paths, and
/// a decoded link is checked with one compare against `fresh`.
/// Objects at index `fresh` and above were never used and are not on the list: a new
/// slab costs no writes to its objects.
struct Slab {
  let base: UnsafeMutableRawPointer

  static let headerBytes = 96
  /// Objects one slab can track (the bitmap's bits).
  static let maximumObjects = 256
  static let listFull: UInt8 = 0
  static let listPartial: UInt8 = 1
  static let listCurrent: UInt8 = 2
  /// `headIndex` of an empty free list, and the link the last free object holds: above
  /// every index, so one unsigned compare against the capacity rejects it.
  static let noObject: UInt32 = .max
  /// The end of the list as a free object's decoded link: `noObject` sign-extended.
  static let endOfList: UInt = .max

  @inline(__always) init(_ base: UnsafeMutableRawPointer) { self.base = base }
  /// The slab at `address`, which is not 0 (not checked).
  @inline(__always) init(address: UInt) { base = UnsafeMutableRawPointer(bitPattern: address).unsafelyUnwrapped }

  @inline(__always) var address: UInt { UInt(bitPattern: base) }

  var check: UInt {
    @inline(__always) get { base.load(as: UInt.self) }
    @inline(__always) nonmutating set { base.storeBytes(of: newValue, as: UInt.self) }
  }
  /// The address of the cache's lock and state (`SpinLocked<SlabCache>`).
  var cacheAddress: UInt {
    @inline(__always) get { base.load(fromByteOffset: 8, as: UInt.self) }
    @inline(__always) nonmutating set { base.storeBytes(of: newValue, toByteOffset: 8, as: UInt.self) }
  }
  /// The cache the slab belongs to.
  var cache: SpinLocked<SlabCache> {
    @inline(__always) get { SpinLocked(at: UnsafeMutableRawPointer(bitPattern: cacheAddress)!) }
  }
  /// The first free object's index, or `noObject`.
  var headIndex: UInt32 {
    @inline(__always) get { base.load(fromByteOffset: 16, as: UInt32.self) }
    @inline(__always) nonmutating set { base.storeBytes(of: newValue, toByteOffset: 16, as: UInt32.self) }
  }
  var next: UInt {
    @inline(__always) get { base.load(fromByteOffset: 24, as: UInt.self) }
    @inline(__always) nonmutating set { base.storeBytes(of: newValue, toByteOffset: 24, as: UInt.self) }
  }
  var previous: UInt {
    @inline(__always) get { base.load(fromByteOffset: 32, as: UInt.self) }
    @inline(__always) nonmutating set { base.storeBytes(of: newValue, toByteOffset: 32, as: UInt.self) }
  }
  var inUse: Int {
    @inline(__always) get { Int(base.load(fromByteOffset: 20, as: UInt32.self)) }
    @inline(__always) nonmutating set { base.storeBytes(of: UInt32(truncatingIfNeeded: newValue), toByteOffset: 20, as: UInt32.self) }
  }
  var fresh: Int {
    @inline(__always) get { Int(base.load(fromByteOffset: 44, as: UInt16.self)) }
    @inline(__always) nonmutating set { base.storeBytes(of: UInt16(truncatingIfNeeded: newValue), toByteOffset: 44, as: UInt16.self) }
  }
  var list: UInt8 {
    @inline(__always) get { base.load(fromByteOffset: 46, as: UInt8.self) }
    @inline(__always) nonmutating set { base.storeBytes(of: newValue, toByteOffset: 46, as: UInt8.self) }
  }
  var quarantined: Bool {
    @inline(__always) get { base.load(fromByteOffset: 47, as: UInt8.self) != 0 }
    @inline(__always) nonmutating set { base.storeBytes(of: newValue ? 1 : 0, toByteOffset: 47, as: UInt8.self) }
  }

  /// The bitmap word holding object `index`'s bit.
  @inline(__always)
  func bitmapWord(_ index: Int) -> UnsafeMutablePointer<UInt64> {
    (base + 48 + (index >> 6) << 3).assumingMemoryBound(to: UInt64.self)
  }
  @inline(__always) static func bit(_ index: Int) -> UInt64 { 1 << UInt64(index & 63) }

  /// Whether object `index` is handed out.
  @inline(__always)
  func isAllocated(_ index: Int) -> Bool { bitmapWord(index).pointee & Slab.bit(index) != 0 }

  /// The check word a header of size-class cache `cache` at `address` carries, for a
  /// heap secret; an object cache's slab carries it with `objectCacheMark` mixed in,
  /// so kfree's fast path tells the two kinds apart with the one compare it makes anyway.
  @inline(__always)
  static func checkWord(_ address: UInt, _ cache: UInt, _ secret: UInt) -> UInt {
    address ^ cache ^ secret
  }

  /// Mixed into the check word of an object cache's slabs.
  static let objectCacheMark: UInt = 0x0bca_5eed_0000_0000

  /// Whether the header's check word is intact for a slab of either kind of cache.
  @inline(__always)
  func hasValidCheck(secret: UInt) -> Bool {
    let plain = Slab.checkWord(address, cacheAddress, secret)
    let check = self.check
    return check == plain || check == plain ^ Slab.objectCacheMark
  }

  /// Writes a fresh header for the cache at `cache` whose `slabCheckBase` is
  /// `checkBase`: no object used, the bitmap clear.
  func initialize(cache: UInt, checkBase: UInt) {
    check = address ^ checkBase
    cacheAddress = cache
    headIndex = Slab.noObject
    next = 0
    previous = 0
    inUse = 0
    fresh = 0
    list = Slab.listCurrent
    quarantined = false
    (base + 48).initializeMemory(as: UInt64.self, repeating: 0, count: Slab.maximumObjects / 64)
  }
}
