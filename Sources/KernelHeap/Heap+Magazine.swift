// The magazine: a size-class cache's last freed objects of its current slab, kept in
// the cache itself (Bonwick's magazines, one level and small) so that the next
// allocation hands one out without reading the slab's free list.
//
// An object in the magazine is free to every caller: its bitmap bit is clear, so a
// second free of it is the same bit test's double free, and `sizeClass(ofObject:)`
// says -1. To its slab it is still handed out: it counts in `inUse`, is not on the
// free list and holds no link, so the slab cannot empty or move while it is cached.
// Every object in the magazine belongs to `current`; whatever replaces or releases the
// current slab empties the magazine into it first (`flushMagazine`).
//
// An entry is four words: the object's address, its bitmap word's address, its bit and
// its index, so that a pop is one load pair and a read-modify-write of the word, and a
// push one store pair more than the bit it clears.
extension Heap {
  /// Objects one size-class cache's magazine holds (`SlabCache.magazineSize`).
  package static var magazineSize: Int { SlabCache.magazineSize }

  /// The address of entry `index` of `cache`'s magazine.
  @inline(__always)
  static func magazineEntry(_ cache: inout SlabCache, _ index: Int) -> UnsafeMutablePointer<UInt> {
    withUnsafeMutablePointer(to: &cache.magazine) { storage in
      UnsafeMutableRawPointer(storage).assumingMemoryBound(to: UInt.self) + index &* SlabCache.magazineEntryWords
    }
  }

  /// The magazine's newest object, handed out (its bit set), or nil when it is empty.
  /// - Complexity: O(1).
  @inline(__always)
  static func takeFromMagazine(_ cache: inout SlabCache) -> UnsafeMutableRawPointer? {
    let count = cache.magazineCount
    guard count > 0 else { return nil }
    cache.magazineCount = count &- 1
    return handOut(magazineEntry(&cache, count &- 1))
  }

  /// Marks the object of a magazine entry allocated and returns it.
  @inline(__always)
  static func handOut(_ entry: UnsafeMutablePointer<UInt>) -> UnsafeMutableRawPointer {
    let word = UnsafeMutablePointer<UInt64>(bitPattern: entry[1]).unsafelyUnwrapped
    word.pointee |= UInt64(entry[2])
    return UnsafeMutableRawPointer(bitPattern: entry[0]).unsafelyUnwrapped
  }

  /// Frees object `index` (at `object`) of the current slab into the magazine: clears
  /// the object's bit and records it.
  /// - Precondition: `count` is `cache.magazineCount` and below `magazineSize`; the
  ///   object is allocated and its slab is `cache.current` (the caller checked).
  /// - Complexity: O(1).
  @inline(__always)
  static func putInMagazine(
    _ cache: inout SlabCache, count: Int, object: UInt, word: UnsafeMutablePointer<UInt64>, bit: UInt64, index: Int
  ) {
    word.pointee &= ~bit
    let entry = magazineEntry(&cache, count)
    entry[0] = object
    entry[1] = UInt(bitPattern: word)
    entry[2] = UInt(bit)
    entry[3] = UInt(bitPattern: index)
    cache.magazineCount = count &+ 1
  }

  /// Puts every object of the magazine back on the current slab's free list, as a free
  /// would have: before the current slab is replaced or released.
  /// - Complexity: O(`SlabCache.magazineSize`).
  func flushMagazine(_ cache: inout SlabCache) {
    let count = cache.magazineCount
    guard count > 0, cache.current != 0 else {
      cache.magazineCount = 0
      return
    }
    cache.magazineCount = 0
    let slab = Slab(address: cache.current)
    for index in 0..<count {
      // The bit is clear already; `slabFree` links the object and counts it free. The
      // slab is the current one, so it moves nowhere.
      slabFree(&cache, slab, index: Int(bitPattern: Heap.magazineEntry(&cache, index)[3]))
    }
  }

  /// Checks `cache`'s magazine against its current slab (`current` is 0 or a slab whose
  /// header, run and counts `checkSlab` vouches for): each entry names a distinct used
  /// object of it whose bit is clear, with that object's address, bitmap word and bit,
  /// and that is not on its free list.
  /// - Returns: the first failure, or nil.
  /// - Complexity: O(`magazineSize` × free list).
  func checkMagazine(_ cache: inout SlabCache) -> HeapCheckFailure? {
    let count = cache.magazineCount
    guard count >= 0, count <= SlabCache.magazineSize, count == 0 || cache.current != 0 else {
      return HeapCheckFailure(reason: "slab magazine count out of range", address: cache.address)
    }
    guard count > 0 else { return nil }
    let slab = Slab(address: cache.current)
    for position in 0..<count {
      let entry = Heap.magazineEntry(&cache, position)
      let index = Int(bitPattern: entry[3])
      guard index >= 0, index < slab.fresh, entry[0] == cache.objectAddress(index, in: slab),
        entry[1] == UInt(bitPattern: slab.bitmapWord(index)), entry[2] == UInt(Slab.bit(index)), !slab.isAllocated(index)
      else {
        return HeapCheckFailure(reason: "slab magazine entry is no free object of the current slab", address: entry[0])
      }
      for earlier in 0..<position where Heap.magazineEntry(&cache, earlier)[3] == entry[3] {
        return HeapCheckFailure(reason: "slab magazine holds an object twice", address: entry[0])
      }
      // Not on the free list: the walk is bounded by the slab's capacity.
      var next = SlabCache.link(slab.headIndex)
      var steps = 0
      while next != Slab.endOfList, next < UInt(slab.fresh), steps < cache.capacity {
        guard next != UInt(index) else {
          return HeapCheckFailure(reason: "slab magazine object is on its free list", address: entry[0])
        }
        let object = cache.objectAddress(Int(next), in: slab)
        next = cache.encode(UnsafeRawPointer(bitPattern: object).unsafelyUnwrapped.load(as: UInt.self), at: object)
        steps += 1
      }
    }
    return nil
  }
}
