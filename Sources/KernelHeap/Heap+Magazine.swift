// The magazine: a size-class cache's last freed objects of its current slab, kept in
// the cache itself (Bonwick's magazines, one level and small) so that the next
// allocation hands one out without reading the slab's free list.
//
// An object in the magazine is free to every caller: its bitmap bit is clear, so a
// second free of it is the same bit test's double free, and `sizeClass(ofObject:)`
// says -1. To its slab it is still handed out: it counts in `inUse`, is not on the
// free list and holds no link, so the slab cannot empty or move while it is cached.
// Every object in the magazine belongs to `current`; whatever replaces or releases the
// current slab empties the magazine into it first (`flushMagazine`), or, for a slab
// found overwritten, drops it; the slow path that changes slabs runs only once the
// magazine is empty.
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
    return popMagazine(&cache, count: count)
  }

  /// `takeFromMagazine` for a caller that has tested the count itself.
  /// - Precondition: `count` is `cache.magazineCount` and above 0.
  /// - Complexity: O(1).
  @inline(__always)
  static func popMagazine(_ cache: inout SlabCache, count: Int) -> UnsafeMutableRawPointer {
    cache.magazineCount = count &- 1
    let entry = magazineEntry(&cache, count &- 1)
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
    cache.magazineCount = 0
    // A magazine holds objects only while there is a current slab.
    guard count > 0 else { return }
    let slab = Slab(address: cache.current)
    for index in 0..<count {
      // The bit is clear already; `slabFree` links the object and counts it free. The
      // slab is the current one, so it moves nowhere.
      slabFree(&cache, slab, index: Int(bitPattern: Heap.magazineEntry(&cache, index)[3]))
    }
  }

  /// The indices the magazine's entries name, as a bitmap like a slab's (an index
  /// outside it is left out, for `checkMagazine` to report).
  /// - Complexity: O(`magazineSize`).
  func magazineIndices(_ cache: inout SlabCache) -> InlineArray<4, UInt64> {
    var indices = InlineArray<4, UInt64>(repeating: 0)
    for position in 0..<min(max(cache.magazineCount, 0), SlabCache.magazineSize) {
      let index = Heap.magazineEntry(&cache, position)[3]
      if index < UInt(Slab.maximumObjects) { indices[Int(index >> 6)] |= Slab.bit(Int(index)) }
    }
    return indices
  }

  /// Checks `cache`'s magazine against its current slab (`current` is 0 or a slab
  /// `checkSlab` vouches for, which also finds the magazine's objects off its free list
  /// and counted in its `inUse`): each entry names a used object of it whose bit is
  /// clear, with that object's address, bitmap word and bit, and no two the same.
  /// - Parameter indices: `magazineIndices(&cache)`.
  /// - Returns: the first failure, or nil.
  /// - Complexity: O(`magazineSize`).
  func checkMagazine(_ cache: inout SlabCache, _ indices: InlineArray<4, UInt64>) -> HeapCheckFailure? {
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
    }
    let distinct = indices[0].nonzeroBitCount + indices[1].nonzeroBitCount + indices[2].nonzeroBitCount + indices[3].nonzeroBitCount
    guard distinct == count else { return HeapCheckFailure(reason: "slab magazine holds an object twice", address: cache.address) }
    return nil
  }
}
