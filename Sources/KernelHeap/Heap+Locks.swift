import KernelSync
import PageFrames

// The heap's locks. Order, outermost first (never the reverse):
//   1. the object-cache list lock (`cachesLock`);
//   2. slab-cache locks (each size class of each CPU, each object cache), in address
//      order when more than one is held (only `withAllLocks` holds more than one);
//   3. the heap lock (`heapLock`): TLSF blocks, arenas, large allocations, counters;
//   4. the page frames' locks (a CPU's page cache, then the global one).
// All are `SpinLock`s (test-and-set), not ticket locks: a ticket lock hands itself to the
// next waiter even when that CPU is not running (a vCPU the host descheduled), and every
// CPU behind it waits too (see `SpinLock`).
// A lock refused because this CPU holds it already (re-entry from an interrupt handler)
// gives nil or `HeapError.reentered`, never a deadlock.
/// The first 64 bytes of a heap's control block: the heap lock, the object-cache list
/// lock and the list (its head and the caches made so far), as raw words. They are
/// kept out of `HeapControl`, which only the heap lock guards: a struct changed under
/// two locks would be changed by two CPUs at once.
enum HeapPrefix {
  static let bytes = 64
  static let cachesLockOffset = 16
  static let listHeadOffset = 32
  static let cachesMadeOffset = 40

  /// Zeroes the prefix at `start`: both locks free, no object cache.
  static func initialize(_ start: UnsafeMutableRawPointer) {
    start.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
  }
}

extension Heap {
  var prefix: UnsafeMutableRawPointer { UnsafeMutableRawPointer(control) - HeapPrefix.bytes }

  /// The heap lock: TLSF blocks, arenas, large allocations, `HeapControl`.
  var heapLock: SpinLock { SpinLock(prefix.assumingMemoryBound(to: UInt32.self)) }

  /// The object-cache list lock: the list and the serial counter below.
  var cachesLock: SpinLock {
    SpinLock((prefix + HeapPrefix.cachesLockOffset).assumingMemoryBound(to: UInt32.self))
  }

  /// The newest `ObjectCache`'s state (a list through `nextCache`), or 0. List lock.
  var objectCachesHead: UInt {
    get { prefix.load(fromByteOffset: HeapPrefix.listHeadOffset, as: UInt.self) }
    nonmutating set { prefix.storeBytes(of: newValue, toByteOffset: HeapPrefix.listHeadOffset, as: UInt.self) }
  }

  /// Object caches made so far (each cache's serial). List lock.
  var objectCachesMade: UInt {
    get { prefix.load(fromByteOffset: HeapPrefix.cachesMadeOffset, as: UInt.self) }
    nonmutating set { prefix.storeBytes(of: newValue, toByteOffset: HeapPrefix.cachesMadeOffset, as: UInt.self) }
  }

  /// An object from `cache` under its lock.
  /// - Complexity: O(1), as `slabAllocate`.
  @inline(__always)
  func lockedSlabAllocate(_ cache: UnsafeMutablePointer<SlabCache>, cpu: Int) -> UnsafeMutableRawPointer? {
    guard cache.lock.lock(cpu: cpu) == nil else { return nil }
    let object = slabAllocate(cache)
    cache.lock.release()
    return object
  }

  /// The slab of this heap whose page run holds `pointer`, with an intact header, or
  /// nil (then it is a block, a large allocation or bad input, all decided under the
  /// heap lock). Read without a lock: a slab's run, cache and check word do not change
  /// while one of its objects is live, and the caller re-checks under the cache lock.
  /// - Complexity: O(1): one page-entry lookup.
  @inline(__always)
  func slabHolding(_ pointer: UnsafeMutableRawPointer) -> Slab? {
    let address = UInt(bitPattern: pointer)
    guard address & 15 == 0,
      address < control.pointee.initialStart || address >= control.pointee.initialEnd,
      let frames = control.pointee.frames,
      let found = frames.runEntry(containing: frames.physical(of: pointer)),
      found.head.ownerRawValue == PageOwner.slab.rawValue, found.head.next == control.pointee.tag
    else { return nil }
    let slab = Slab(address: Page.roundDown(address) &- UInt(bitPattern: found.pagesIn) << UInt(Page.shift))
    guard slab.check == Slab.checkWord(slab.address, slab.cache, control.pointee.slabSecret) else { return nil }
    return slab
  }

  /// `slabHolding(pointer)` with its cache's lock held, the header checked again under
  /// the lock; nil (no lock held) when `pointer` is in no slab, or when its slab changed
  /// between the unlocked look and the lock: another CPU freed the slab's last object
  /// and gave the run back (a concurrent double free), maybe to a slab of another cache.
  /// The caller then decides under the heap lock, from the page entry.
  /// - Throws: `reentered` when this CPU already holds the cache's lock.
  /// - Complexity: O(1).
  @inline(__always)
  func lockSlab(holding pointer: UnsafeMutableRawPointer, cpu: Int) throws(HeapError) -> Slab? {
    guard let slab = slabHolding(pointer) else { return nil }
    // The check word `slabHolding` found intact: address ^ cache ^ secret, so while it
    // is unchanged the slab still belongs to `cache` (a release clears it, a new slab at
    // this address for another cache has another).
    let cache = slab.cache, check = slab.check
    guard cache.lock.lock(cpu: cpu) == nil else { throw HeapError(.reentered, UInt(bitPattern: pointer)) }
    guard slab.check == check else {
      cache.lock.release()
      return nil
    }
    return slab
  }

  /// Runs `body` holding every lock of the heap in order: the object-cache list, every
  /// size-class cache of every CPU, every object cache, the heap. For the walks that
  /// read everything (`check`, `statistics`, `drawMap`). nil when a lock refused
  /// (called from inside the heap on this CPU).
  /// - Complexity: O(caches) plus `body`.
  func withAllLocks<Result>(_ body: () -> Result) -> Result? {
    let cpu = CPU.current
    guard cachesLock.lock(cpu: cpu) == nil else { return nil }
    defer { cachesLock.unlock(cpu: cpu) }
    let held = forEachCache { $0.lock.lock(cpu: cpu) == nil }
    defer { _ = forEachCache(upTo: held) { $0.lock.unlock(cpu: cpu) == nil } }
    guard held == Int.max, heapLock.lock(cpu: cpu) == nil else { return nil }
    defer { heapLock.unlock(cpu: cpu) }
    return body()
  }

  /// Takes every lock of the heap in `withAllLocks`' order and keeps them until
  /// `unlockAll`: for a fork (the preload library's pthread_atfork prepare handler), so
  /// that the child never starts with a lock another thread held.
  /// - Returns: false, with nothing held, when a lock refused (this CPU holds one).
  /// - Complexity: O(caches) plus the waits.
  package func lockAll() -> Bool {
    let cpu = CPU.current
    guard cachesLock.lock(cpu: cpu) == nil else { return false }
    let held = forEachCache { $0.lock.lock(cpu: cpu) == nil }
    guard held == Int.max, heapLock.lock(cpu: cpu) == nil else {
      _ = forEachCache(upTo: held) { $0.lock.unlock(cpu: cpu) == nil }
      cachesLock.unlock(cpu: cpu)
      return false
    }
    return true
  }

  /// Releases what `lockAll` took, from the CPU (thread) that took it.
  /// - Complexity: O(caches).
  package func unlockAll() {
    let cpu = CPU.current
    heapLock.unlock(cpu: cpu)
    _ = forEachCache { $0.lock.unlock(cpu: cpu) == nil }
    cachesLock.unlock(cpu: cpu)
  }

  /// Calls `body` on every size-class cache of every CPU, then every object cache whose
  /// state passes its check (a broken list ends the walk: `check` reports it), while
  /// `body` returns true and at most `limit` times. Returns `Int.max` when it went
  /// through all of them, else how many calls returned true.
  /// Holder of the object-cache list lock.
  func forEachCache(upTo limit: Int = Int.max, _ body: (UnsafeMutablePointer<SlabCache>) -> Bool) -> Int {
    var calls = 0
    if let caches = control.pointee.classCaches {
      for index in 0..<(SlabClass.count * CPU.maximum) {
        guard calls < limit, body(SlabCache.at(caches, index)) else { return calls }
        calls += 1
      }
    }
    var address = objectCachesHead
    var steps = 0
    while let cache = UnsafeMutablePointer<SlabCache>(bitPattern: address), steps < 1 << 20,
      cache.pointee.check == SlabCache.checkWord(
        address: address, heapSecret: control.pointee.slabSecret, kind: SlabCache.kindObjectCache, serial: cache.pointee.serial)
    {
      guard calls < limit, body(cache) else { return calls }
      calls += 1
      steps += 1
      address = cache.nextCache
    }
    return limit == Int.max ? Int.max : calls
  }
}

extension SlabCache {
  /// Bytes in front of every `SlabCache`: its lock and its object-cache list links, as
  /// raw words (the struct itself is only ever changed under the lock).
  static let prefixBytes = 32
  static let nextOffset = 16
  static let previousOffset = 24
  /// Bytes per cache with its prefix.
  static var slotBytes: Int { prefixBytes + Heap.roundUp(MemoryLayout<SlabCache>.stride, 16) }

  /// Cache `index` of an array of caches with prefixes at `caches`.
  @inline(__always)
  static func at(_ caches: UnsafeMutableRawPointer, _ index: Int) -> UnsafeMutablePointer<SlabCache> {
    (caches + (index &* slotBytes &+ prefixBytes)).assumingMemoryBound(to: SlabCache.self)
  }
}

extension UnsafeMutablePointer where Pointee == SlabCache {
  /// The prefix in front of the cache.
  var prefix: UnsafeMutableRawPointer { UnsafeMutableRawPointer(self) - SlabCache.prefixBytes }

  /// The cache's lock: every change to the cache and its slabs. A test-and-set lock: a
  /// size-class cache is taken by its own CPU but for remote frees.
  var lock: SpinLock { SpinLock(prefix.assumingMemoryBound(to: UInt32.self)) }

  /// Links of the heap's object-cache list (the list lock), 0 at the ends.
  var nextCache: UInt {
    get { prefix.load(fromByteOffset: SlabCache.nextOffset, as: UInt.self) }
    nonmutating set { prefix.storeBytes(of: newValue, toByteOffset: SlabCache.nextOffset, as: UInt.self) }
  }
  var previousCache: UInt {
    get { prefix.load(fromByteOffset: SlabCache.previousOffset, as: UInt.self) }
    nonmutating set { prefix.storeBytes(of: newValue, toByteOffset: SlabCache.previousOffset, as: UInt.self) }
  }
}
