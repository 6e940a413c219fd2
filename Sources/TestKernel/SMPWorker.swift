// What every core of the SMP stress runs (the boot core too): random allocations of
// every kind with tags written into them, frees with the tags checked, a quarter of the
// frees handed to another core through its queue; then the barriers and the drain.
#if arch(arm64) && os(none)
import Arch
import ArchSupport
import KernelHeap
import PageFrames

/// Bits of the tag that name the core that allocated an object (the rest: its serial).
private let tagCoreShift: UInt64 = 56
/// Mixed into every tag so that no tag is a small number or a likely pointer.
private let tagPattern: UInt64 = 0x00A5_5A5A_A55A_A5A5
/// Largest page order the stress allocates (16 pages).
private let maxPagesOrder = 4
/// kmalloc sizes: mostly small, some up to 8 KiB, a few up to 200 KiB.
private let smallLimit = 1024
private let mediumLimit = 8 << 10
private let largeLimit = 200 << 10
/// Of every 100 kmallocs: this many small, then this many medium; the rest large.
private let smallPercent = 85
private let mediumPercent = 12
/// What an allocation is, out of `kindDraws` equally likely draws: the first
/// `kmallocDraws` kmalloc, the next `cacheDraws` the object cache, the next `pageDraws`
/// allocPage, the rest allocPages of order 0...`maxPagesOrder`.
private let kindDraws = 16
private let kmallocDraws = 9
private let cacheDraws = 3
private let pageDraws = 2
/// One free in this many goes to another core's queue.
private let crossFreeOneIn = 4

/// What one core counted.
struct SMPTally {
  /// Allocations and frees this core made (frees of objects other cores handed it too).
  var operations = 0
  /// Frees of objects another core allocated.
  var crossFrees = 0
  /// Tag mismatches and failed allocations.
  var failures = 0
}

/// The entry the other cores run (`bootMemory(secondaryEntry:)`): waits for the boot
/// core's start, runs the stress, returns (the core parks).
let smpSecondaryEntry: Platform.SecondaryEntry = { cpu in
  guard smpWaitForStart() == smpStart, let run = smpRun else { return }
  smpWork(run, cpu: cpu)
}

/// Core `cpu`'s whole part: `run.operations` operations, barrier 1, then its queue and
/// table freed, `kmemDrainCaches()`, its tally stored, barrier 2.
/// - Returns: whether both barriers were passed by every member.
@discardableResult
func smpWork(_ run: SMPRun, cpu: Int) -> Bool {
  let area = run.area(cpu)
  let table = area.table
  var random = SMPRandom(seed: run.seed, cpu: cpu)
  var tally = SMPTally()
  var live = 0
  var serial: UInt64 = 0
  while tally.operations < run.operations {
    // Objects other cores handed over.
    for _ in 0..<smpQueueBatch {
      guard let object = area.pop(by: cpu) else { break }
      release(object, run, cpu: cpu, &tally)
      tally.crossFrees += 1
    }
    // Allocate or free, even odds, within the table's bounds.
    if live == 0 || live < smpLiveLimit && random.below(2) == 0 {
      serial += 1
      if let object = allocate(run, cpu: cpu, serial: serial, &random, &tally) {
        table[live] = object
        live += 1
      }
      continue
    }
    let index = random.below(live)
    let object = table[index]
    live -= 1
    table[index] = table[live]
    // A quarter of the frees: another core's job (the next one when a queue is full).
    if run.cores > 1 && random.below(crossFreeOneIn) == 0 && handOver(object, run, cpu: cpu, first: random.below(run.cores - 1)) {
      continue
    }
    release(object, run, cpu: cpu, &tally)
  }
  guard smpBarrier(run, cpu: cpu, phase: 1) else { return false }
  // Nobody pushes any more: free what is queued and what is live.
  while let object = area.pop(by: cpu) {
    release(object, run, cpu: cpu, &tally)
    tally.crossFrees += 1
  }
  while live > 0 {
    live -= 1
    release(table[live], run, cpu: cpu, &tally)
  }
  kmemDrainCaches()
  area.store(SMPCoreArea.operationsOffset, tally.operations)
  area.store(SMPCoreArea.crossFreesOffset, tally.crossFrees)
  area.store(SMPCoreArea.failuresOffset, tally.failures)
  return smpBarrier(run, cpu: cpu, phase: 2)
}

/// Queues `object` on another member's queue, trying them in turn from the `first`-th;
/// false when every queue is full.
private func handOver(_ object: SMPObject, _ run: SMPRun, cpu: Int, first: Int) -> Bool {
  for attempt in 0..<(run.cores - 1) {
    if run.area(run.otherMember(cpu, (first + attempt) % (run.cores - 1))).push(object, from: cpu) { return true }
  }
  return false
}

/// One random allocation, tagged; nil (counted, reported) when the allocator had none.
private func allocate(_ run: SMPRun, cpu: Int, serial: UInt64, _ random: inout SMPRandom, _ tally: inout SMPTally) -> SMPObject? {
  tally.operations += 1
  let tag = (UInt64(cpu) << tagCoreShift | serial) ^ tagPattern
  let choice = random.below(kindDraws)
  var object: SMPObject
  if choice < kmallocDraws {
    let band = random.below(100)
    let size = band < smallPercent ? 1 + random.below(smallLimit)
      : band < smallPercent + mediumPercent ? smallLimit + 1 + random.below(mediumLimit - smallLimit)
      : mediumLimit + 1 + random.below(largeLimit - mediumLimit)
    object = SMPObject(address: UInt(bitPattern: kmalloc(UInt32(size))), size: size, tag: tag, kind: .kmalloc)
  } else if choice < kmallocDraws + cacheDraws {
    object = SMPObject(address: UInt(bitPattern: kmemCacheAlloc(run.cache)), size: smpCacheObjectBytes, tag: tag, kind: .cache)
  } else if choice < kmallocDraws + cacheDraws + pageDraws {
    object = SMPObject(address: UInt(bitPattern: allocPage()), size: 0, tag: tag, kind: .page)
  } else {
    let order = random.below(maxPagesOrder + 1)
    object = SMPObject(address: UInt(bitPattern: allocPages(order: order)), size: order, tag: tag, kind: .pages)
  }
  guard let pointer = UnsafeMutableRawPointer(bitPattern: object.address) else {
    fail(cpu, &tally, object, "returned nil, size or order", UInt(object.size))
    return nil
  }
  stamp(object, pointer)
  return object
}

/// Checks `object`'s tag and frees it the way it was allocated. A changed tag is a
/// failure (reported), and the object is not freed (it may be another's).
private func release(_ object: SMPObject, _ run: SMPRun, cpu: Int, _ tally: inout SMPTally) {
  tally.operations += 1
  guard let pointer = UnsafeMutableRawPointer(bitPattern: object.address) else { return }
  if let found = mismatch(object, pointer) {
    fail(cpu, &tally, object, "tag changed at", object.address, found: found)
    return
  }
  switch object.kind {
  case .kmalloc: kfree(pointer)
  case .cache: kmemCacheFree(run.cache, pointer)
  case .page: freePage(pointer)
  case .pages: freePages(pointer, order: object.size)
  }
}

/// The bytes of an object its tag covers: the first 8 (all of them when fewer) and,
/// from 16 bytes on, the last 8.
private func tagSpans(_ object: SMPObject) -> (head: Int, tail: Int?) {
  let bytes: Int
  switch object.kind {
  case .kmalloc, .cache: bytes = object.size
  case .page: bytes = Page.size
  case .pages: bytes = Page.size << object.size
  }
  return (min(bytes, 8), bytes >= 16 ? bytes - 8 : nil)
}

/// Writes the tag's bytes at the object's start and end (little endian).
private func stamp(_ object: SMPObject, _ pointer: UnsafeMutableRawPointer) {
  let spans = tagSpans(object)
  for i in 0..<spans.head {
    pointer.storeBytes(of: UInt8(truncatingIfNeeded: object.tag >> UInt64(8 * i)), toByteOffset: i, as: UInt8.self)
  }
  if let tail = spans.tail { pointer.storeBytes(of: object.tag, toByteOffset: tail, as: UInt64.self) }
}

/// nil when the object still carries its tag, else the first span's differing value.
private func mismatch(_ object: SMPObject, _ pointer: UnsafeMutableRawPointer) -> UInt64? {
  let spans = tagSpans(object)
  var head: UInt64 = 0
  for i in 0..<spans.head { head |= UInt64(pointer.load(fromByteOffset: i, as: UInt8.self)) << UInt64(8 * i) }
  let mask: UInt64 = spans.head == 8 ? ~0 : (1 << UInt64(8 * spans.head)) - 1
  if head != object.tag & mask { return head }
  if let tail = spans.tail {
    let found = pointer.loadUnaligned(fromByteOffset: tail, as: UInt64.self)
    if found != object.tag { return found }
  }
  return nil
}

/// Counts a failure and prints its line (the first few per core) under the console
/// lock: `smp: cpu N: <kind> <reason> <value>[, tag expected X found Y]`.
private func fail(_ cpu: Int, _ tally: inout SMPTally, _ object: SMPObject, _ reason: StaticString, _ value: UInt, found: UInt64? = nil) {
  tally.failures += 1
  guard tally.failures <= smpFailureLinesPerCore else { return }
  withConsoleLock {
    kput("smp: cpu ")
    kputDecimal(UInt(cpu))
    kput(": ")
    kput(object.kind.name)
    kput(" ")
    kput(reason)
    kput(" ")
    kputHex(value)
    if let found {
      kput(", tag expected ")
      kputHex(UInt(object.tag))
      kput(" found ")
      kputHex(UInt(found))
    }
    kput("\n")
  }
}

#endif
