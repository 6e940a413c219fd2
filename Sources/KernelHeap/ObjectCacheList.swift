import KernelSync

/// The heap's object caches: the state behind the object-cache list lock. Each cache
/// lives in a slot from the heap's blocks: its list links, then its lock and state
/// (`SpinLocked<SlabCache>`) at `cellOffset`. A destroyed cache's slot is never given
/// back to the heap: it waits on `retired` for the next cache, so a CPU that still uses
/// a handle to a destroyed cache takes a real lock and finds the cache's check word
/// changed (type-stable memory, as Linux's SLAB_TYPESAFE_BY_RCU caches keep it).
struct ObjectCacheList {
  /// Bytes of a slot, and where its cache's lock and state start.
  static let cellOffset = 64
  static var slotBytes: Int { cellOffset + SlabCache.cellBytes }

  /// The newest live cache's slot (a list through every live cache), or 0.
  var head: UInt = 0
  /// Live caches on the list.
  var count = 0
  /// Caches made so far: each cache's serial.
  var made: UInt = 0
  /// Slots of destroyed caches, waiting for the next cache (a list through `next`), or 0.
  var retired: UInt = 0

  /// The cache in `slot`.
  static func cache(inSlot slot: UInt) -> SpinLocked<SlabCache> {
    SpinLocked(at: UnsafeMutableRawPointer(bitPattern: slot + UInt(cellOffset))!)
  }

  /// The slot after `slot` on its list.
  func next(_ slot: UInt) -> UInt { UnsafeRawPointer(bitPattern: slot)!.load(as: UInt.self) }

  private mutating func setNext(_ slot: UInt, _ value: UInt) {
    UnsafeMutableRawPointer(bitPattern: slot)!.storeBytes(of: value, as: UInt.self)
  }
  private func previous(_ slot: UInt) -> UInt { UnsafeRawPointer(bitPattern: slot)!.load(fromByteOffset: 8, as: UInt.self) }
  private mutating func setPrevious(_ slot: UInt, _ value: UInt) {
    UnsafeMutableRawPointer(bitPattern: slot)!.storeBytes(of: value, toByteOffset: 8, as: UInt.self)
  }

  /// Puts live cache `slot` at the head of the list.
  mutating func link(_ slot: UInt) {
    setNext(slot, head)
    setPrevious(slot, 0)
    if head != 0 { setPrevious(head, slot) }
    head = slot
    count += 1
  }

  /// Takes a destroyed cache's `slot` off the live list onto the retired list.
  mutating func retire(_ slot: UInt) {
    let after = next(slot), before = previous(slot)
    if after != 0 { setPrevious(after, before) }
    if before != 0 { setNext(before, after) } else { head = after }
    count -= 1
    keepRetired(slot)
  }

  /// Puts `slot`, on no list, onto the retired list.
  mutating func keepRetired(_ slot: UInt) {
    setNext(slot, retired)
    retired = slot
  }

  /// A retired slot for a new cache, or nil.
  mutating func takeRetired() -> UInt? {
    guard retired != 0 else { return nil }
    let slot = retired
    retired = next(slot)
    return slot
  }

  /// Calls `body` with every live cache's slot, newest first, at most `count` of them (a
  /// broken list ends the walk early: `check` reports it).
  /// - Complexity: O(live caches).
  func forEachSlot(_ body: (UInt) -> Void) {
    var slot = head
    for _ in 0..<count where slot != 0 {
      body(slot)
      slot = next(slot)
    }
  }

  /// The live cache at position `position` (0: the newest), or nil past the end.
  /// - Complexity: O(position).
  func cache(at position: Int) -> SpinLocked<SlabCache>? {
    var slot = head
    for _ in 0..<position where slot != 0 { slot = next(slot) }
    return slot == 0 ? nil : ObjectCacheList.cache(inSlot: slot)
  }
}
