import KernelSync
import PageFrames

extension Heap {
  /// Runs `body` holding every lock of the heap in order: the object-cache list, every
  /// size-class cache of every CPU, every object cache, the heap. For the walks that
  /// read everything (`check`, `statistics`, `drawMap`); inside, `forEachCache` and
  /// `SpinLocked.withHeld` reach the caches. nil when a lock refused (called from
  /// inside the heap on this CPU).
  /// - Complexity: O(size classes + object caches²) plus `body`.
  func withAllLocks<R>(_ body: (inout HeapCore) -> R) -> R? {
    let cpu = CPU.current
    let caches = config.pointee.classCaches
    let classes = caches == nil ? 0 : classCacheCount
    return cacheList.withLock(cpu: cpu) { list -> R? in
      var objectCaches = 0
      list.forEachSlot { _ in objectCaches += 1 }
      let walked = SpinLocked<SlabCache>.withLocked(count: classes + objectCaches, cpu: cpu, { index in
        if let caches, index < classes { return classCache(caches, index) }
        return list.cache(at: index - classes) ?? ObjectCacheList.cache(inSlot: list.head)
      }) {
        core.withLock(cpu: cpu) { core in body(&core) }
      }
      return walked ?? nil
    } ?? nil
  }

  /// Takes every lock of the heap in `withAllLocks`' order and keeps them until
  /// `unlockAll`: for a fork (the preload library's pthread_atfork prepare handler), so
  /// that the child never starts with a lock another thread held.
  /// - Returns: false, with nothing held, when a lock refused (this CPU holds one).
  /// - Complexity: O(caches) plus the waits.
  package func lockAll() -> Bool {
    let cpu = CPU.current
    guard cacheList.acquireAcrossCalls(cpu: cpu) else { return false }
    var held = 0
    var refused = false
    forEachCache { cache, _ in
      guard !refused else { return }
      if cache.acquireAcrossCalls(cpu: cpu) { held += 1 } else { refused = true }
    }
    guard refused || !core.acquireAcrossCalls(cpu: cpu) else { return true }
    var index = 0
    forEachCache { cache, _ in
      if index < held { cache.releaseAcrossCalls(cpu: cpu) }
      index += 1
    }
    cacheList.releaseAcrossCalls(cpu: cpu)
    return false
  }

  /// Releases what `lockAll` took, from the CPU (thread) that took it.
  /// - Complexity: O(caches).
  package func unlockAll() {
    let cpu = CPU.current
    core.releaseAcrossCalls(cpu: cpu)
    forEachCache { cache, _ in cache.releaseAcrossCalls(cpu: cpu) }
    cacheList.releaseAcrossCalls(cpu: cpu)
  }

  /// Calls `body` with every size-class cache of every CPU, then every live object
  /// cache, and whether it is an object cache. Inside `withAllLocks` only.
  /// - Complexity: O(caches).
  func forEachCache(_ body: (SpinLocked<SlabCache>, Bool) -> Void) {
    if let caches = config.pointee.classCaches {
      for index in 0..<classCacheCount { body(classCache(caches, index), false) }
    }
    _ = cacheList.withHeld(cpu: CPU.current) { list in list.forEachSlot { body(ObjectCacheList.cache(inSlot: $0), true) } }
  }
}
