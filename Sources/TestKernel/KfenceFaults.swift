// Planted memory bugs for the sampling detector (`fault=kfence-BUG kfence=1`): each makes
// an object in the guarded pool and misuses it; the detector's report must name the bug
// (run_tests.py checks its key, the object and the stacks) and the kernel exit with
// status 4. Each bug's name is its `fault=kfence-` value.
#if os(none)
import Arch
import ArchSupport
import KernelHeap
import KernelMemory

/// The bugs, by their `fault=kfence-` names.
enum PlantedBug: CaseIterable {
  case oobWrite, oobRead, underflowWrite, underflowRead, uafWrite, uafRead, doubleFree, invalidFree, canary
  case cacheOOBWrite, cacheUAFRead, cacheDoubleFree, cacheWrongFree, reallocUAF, alignedOOBWrite, callocOOBRead

  var name: StaticString {
    switch self {
    case .oobWrite: return "oob-write"
    case .oobRead: return "oob-read"
    case .underflowWrite: return "underflow-write"
    case .underflowRead: return "underflow-read"
    case .uafWrite: return "uaf-write"
    case .uafRead: return "uaf-read"
    case .doubleFree: return "double-free"
    case .invalidFree: return "invalid-free"
    case .canary: return "canary"
    case .cacheOOBWrite: return "cache-oob-write"
    case .cacheUAFRead: return "cache-uaf-read"
    case .cacheDoubleFree: return "cache-double-free"
    case .cacheWrongFree: return "cache-wrong-free"
    case .reallocUAF: return "realloc-uaf"
    case .alignedOOBWrite: return "aligned-oob-write"
    case .callocOOBRead: return "calloc-oob-read"
    }
  }

  /// The bug named by `word`, or nil.
  init?(_ word: UnsafeRawBufferPointer) {
    for bug in PlantedBug.allCases where equals(word, bug.name) {
      self = bug
      return
    }
    return nil
  }
}

/// Where a planted object must sit in its slot page: flush against the page's end (an
/// overflow faults) or at its start (an underflow faults).
enum Placement { case end, start }

/// An object from `make` that the pool served with `placement` (a few tries: the pool
/// alternates placements from slot to slot); the kernel panics when none is.
func pooled(_ placement: Placement, size: Int, _ make: () -> UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer {
  guard let pool = kernelMemory.heap?.guardedPool else { Machine.panic("plant", "no guarded pool (kfence=N)", 0) }
  for _ in 0..<4 {
    guard let object = make() else { break }
    let address = UInt(bitPattern: object)
    let rounded = UInt((size + 15) & ~15)
    let atEnd = (address &+ rounded) & 4095 == 0 || (address &+ UInt(size)) & 4095 == 0
    if pool.contains(address) && (placement == .end ? atEnd : address & 4095 == 0) { return object }
  }
  Machine.panic("plant", "no object in the guarded pool with the placement asked for", UInt(size))
}

/// Plants `bug`; returns only if the detector missed it (the caller then goes on, and
/// the harness fails the boot for its exit status).
func plant(_ bug: PlantedBug) {
  kput("planting kfence-")
  kput(bug.name)
  kput("\n")
  switch bug {
  case .oobWrite:
    let object = pooled(.end, size: 32) { kmalloc(32) }
    arch_fault_write(UInt(bitPattern: object) + 32)
  case .oobRead:
    let object = pooled(.end, size: 32) { kmalloc(32) }
    _ = arch_fault_read(UInt(bitPattern: object) + 32)
  case .underflowWrite:
    let object = pooled(.start, size: 48) { kmalloc(48) }
    arch_fault_write(UInt(bitPattern: object) - 4)
  case .underflowRead:
    let object = pooled(.start, size: 48) { kmalloc(48) }
    _ = arch_fault_read(UInt(bitPattern: object) - 1)
  case .uafWrite:
    let object = pooled(.end, size: 64) { kmalloc(64) }
    kfree(object)
    arch_fault_write(UInt(bitPattern: object) + 8)
  case .uafRead:
    let object = pooled(.end, size: 64) { kmalloc(64) }
    kfree(object)
    _ = arch_fault_read(UInt(bitPattern: object))
  case .doubleFree:
    let object = pooled(.end, size: 64) { kmalloc(64) }
    kfree(object)
    kfree(object)
  case .invalidFree:
    let object = pooled(.end, size: 64) { kmalloc(64) }
    kfree(object + 16)
  case .canary:
    let object = pooled(.end, size: 13) { kmalloc(13) }
    object.storeBytes(of: 0x55, toByteOffset: 13, as: UInt8.self)
    kfree(object)
  case .cacheOOBWrite:
    guard let cache = kmemCacheCreate(objectSize: 48) else { Machine.panic("plant", "kmemCacheCreate failed", 48) }
    let object = pooled(.end, size: 48) { kmemCacheAlloc(cache) }
    arch_fault_write(UInt(bitPattern: object) + 48)
  case .cacheUAFRead:
    guard let cache = kmemCacheCreate(objectSize: 80) else { Machine.panic("plant", "kmemCacheCreate failed", 80) }
    let object = pooled(.end, size: 80) { kmemCacheAlloc(cache) }
    kmemCacheFree(cache, object)
    _ = arch_fault_read(UInt(bitPattern: object) + 40)
  case .cacheDoubleFree:
    guard let cache = kmemCacheCreate(objectSize: 96) else { Machine.panic("plant", "kmemCacheCreate failed", 96) }
    let object = pooled(.end, size: 96) { kmemCacheAlloc(cache) }
    kmemCacheFree(cache, object)
    kmemCacheFree(cache, object)
  case .cacheWrongFree:
    guard let cache = kmemCacheCreate(objectSize: 64) else { Machine.panic("plant", "kmemCacheCreate failed", 64) }
    let object = pooled(.end, size: 64) { kmalloc(64) }
    kmemCacheFree(cache, object)
  case .reallocUAF:
    let object = pooled(.end, size: 40) { kmalloc(40) }
    guard krealloc(object, 2000) != nil else { Machine.panic("plant", "krealloc failed", 2000) }
    _ = arch_fault_read(UInt(bitPattern: object) + 8)
  case .alignedOOBWrite:
    let object = pooled(.end, size: 128) { kmallocAligned(100, 64) }
    arch_fault_write(UInt(bitPattern: object) + 128)
  case .callocOOBRead:
    let object = pooled(.end, size: 100) { kcalloc(10, 10) }
    _ = arch_fault_read(UInt(bitPattern: object) + 112)
  }
  kput("kfence-")
  kput(bug.name)
  kput(": not caught\n")
}
#endif
