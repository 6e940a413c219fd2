import KernelSync
import PageFrames

// What a per-thread cache of free objects in front of the size classes needs from the
// heap (the preload library's tcache, Preload/tcache.c): the size class of a live
// object, found without a lock; objects of one class taken in a batch under one lock;
// objects given back in a batch, one lock per run of objects of one cache. None of them
// changes how the heap itself allocates or frees: objects a cache holds are allocated
// objects to the heap (their bitmap bits set, counted in `slabObjects`).
extension Heap {
  /// The size class (`0 ..< SlabClass.count`) of `pointer` when it is the start of a
  /// live object of this heap's size-class slabs; -1 for anything else: a TLSF block,
  /// a large allocation, an object-cache object, a pool object, a freed object, an
  /// interior or foreign pointer. Nothing is reported and nothing changes.
  ///
  /// Read without a lock, as `deallocate`'s first look: a slab's run, cache and check
  /// word do not change while one of its objects is live. For a pointer the caller does
  /// not own (a racing double free) the answer may be stale; `returnObjects` decides
  /// such a pointer under the cache's lock.
  /// - Parameter pointer: any address; only this heap's page entries and, once they
  ///   name a slab of this heap, that slab's header and cache geometry are read.
  /// - Returns: the class, or -1.
  /// - Complexity: O(log ranges): one page-entry lookup, the header's check word, one
  ///   bitmap word.
  @inline(__always)
  public func sizeClass(ofObject pointer: UnsafeMutableRawPointer) -> Int {
    // A size class's slab (an object cache's carries `Slab.objectCacheMark` as well),
    // then kfree's own object-start and bitmap checks.
    guard let slab = slabRun(holding: pointer),
      slab.check == Slab.checkWord(slab.address, slab.cacheAddress, config.pointee.slabSecret),
      case .slabObject? = try? HeapCore.locateObject(pointer, inCheckedSlab: slab)
    else { return -1 }
    // The slot size is a `let` of the cache: read without its lock.
    return sizeClass(ofGranuleIn: slab.cache.snapshot.pointee.slotSize &>> 4)
  }

  /// Allocates up to `count` objects of size class `sizeClass` from the calling CPU's
  /// cache of that class, holding its lock once, into `buffer[0 ..< n]`, in the order
  /// the cache handed them out. The sampling detector's countdown is not touched: a
  /// caller that keeps the objects for later allocations samples them itself
  /// (`allocateFromPool`).
  /// - Parameters:
  ///   - sizeClass: `0 ..< SlabClass.count`.
  ///   - buffer: room for `count` pointers.
  ///   - count: objects wanted, at least 1.
  /// - Returns: n, the objects taken: fewer than `count` when memory ran out, 0 for a
  ///   class out of range, a heap without slabs, or a cache lock this CPU holds already.
  /// - Complexity: O(count) under one lock; a new slab adds one page-run allocation.
  public func takeObjects(
    ofClass sizeClass: Int, into buffer: UnsafeMutablePointer<UnsafeMutableRawPointer>, count: Int
  ) -> Int {
    guard sizeClass >= 0, sizeClass < SlabClass.count, count > 0, let caches = config.pointee.classCaches else { return 0 }
    let cpu = CPU.current
    let cell = classCache(caches, (cpu & config.pointee.slotMask) &* SlabClass.count &+ sizeClass)
    return cell.withLock(cpu: cpu) { cache -> Int in
      var taken = 0
      while taken < count, let object = slabAllocate(&cache) {
        buffer[taken] = object
        taken &+= 1
      }
      return taken
    } ?? 0
  }

  /// Frees `objects[0 ..< count]`, each as `deallocate` would: consecutive objects of
  /// one cache (whichever CPU's) share one hold of its lock. An object that is no live
  /// size-class object (a double free across two callers' batches, say) is handed to
  /// `deallocate` on its own, and what that throws goes to `refused` (with no lock
  /// held); the others are freed all the same.
  /// - Parameters:
  ///   - objects: the pointers; the array itself is not changed.
  ///   - count: how many, 0 or more.
  ///   - refused: called once per object `deallocate` refused, with its error (the
  ///     preload library reports it as a bad `free`).
  /// - Returns: the objects freed (`count` less those refused).
  /// - Complexity: O(count · log ranges), one lock hold per run of one cache.
  @discardableResult
  public func returnObjects(
    _ objects: UnsafePointer<UnsafeMutableRawPointer>, count: Int, refused: (HeapError) -> Void
  ) -> Int {
    let cpu = CPU.current
    let secret = config.pointee.slabSecret
    var freed = 0
    var next = 0
    while next < count {
      let first = next
      let run: Int? = slabHolding(objects[first]).flatMap { firstSlab in
        firstSlab.cache.withLock(cpu: cpu) { cache -> Int in
          // The objects from `first` on that lie in slabs of this cache and are live.
          var index = first
          while index < count {
            let pointer = objects[index]
            guard let slab = index == first ? firstSlab : slabHolding(pointer),
              // A size class's slab: an object cache's carries `Slab.objectCacheMark` too.
              slab.check == Slab.checkWord(slab.address, cache.address, secret),
              let object = cache.objectIndex(UInt(bitPattern: pointer), in: slab), slab.isAllocated(object)
            else { break }
            slabFree(&cache, slab, index: object)
            index &+= 1
          }
          return index &- first
        }
      }
      if let run, run > 0 {
        freed &+= run
        next &+= run
        continue
      }
      // Not a live object of an intact slab (or this CPU holds the lock): as kfree.
      do {
        try deallocate(objects[first])
        freed &+= 1
      } catch {
        refused(error)
      }
      next &+= 1
    }
    return freed
  }

  /// An object of `size` bytes from the attached sampling detector's pool, as the
  /// sampled allocation of the size classes would be: for a caller that counts the
  /// interval itself (a per-thread cache, whose allocations the caches' countdowns do
  /// not see).
  /// - Parameter size: 0 ... `SlabClass.limit`.
  /// - Returns: the pool object, or nil: no pool attached, a size out of range, or no
  ///   free slot (the pool counts that as missed).
  /// - Complexity: as `GuardedPool.allocate`: O(1) plus an `mprotect` and the canaries.
  public func allocateFromPool(_ size: Int) -> UnsafeMutableRawPointer? {
    guard size >= 0, size <= SlabClass.limit, config.pointee.guardedPool != nil else { return nil }
    return allocateSampled(size, alignment: Block.alignment, cache: 0)
  }

  /// The size class of every 16-byte granule of a request, `0 ... SlabClass.limit / 16`
  /// (the fast path's table: request `n` has class `table[(n + 15) / 16]`).
  /// - Parameter granule: `0 ... SlabClass.limit / 16`.
  /// - Returns: the class, or -1 for a granule out of range.
  /// - Complexity: O(1).
  public func sizeClass(ofGranule granule: Int) -> Int {
    guard granule >= 0, granule < SlabClass.granules else { return -1 }
    return sizeClass(ofGranuleIn: granule)
  }

  /// The size class of `granule` (`0 ..< SlabClass.granules`), from the cache-offset
  /// table.
  @inline(__always)
  func sizeClass(ofGranuleIn granule: Int) -> Int {
    Int(config.pointee.cacheOffsetOfGranule[granule]) / SlabCache.cellBytes
  }
}
