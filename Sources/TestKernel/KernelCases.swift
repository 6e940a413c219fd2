// Cases that need the real kernel: the assembly bzero, the kernel's own page allocator
// and heap, the bad-input handler, and Swift's runtime allocating through kmalloc.
#if os(none)
import KernelMemory
import Arch
import ArchSupport
import KernelBoot
import KernelHeap
import KernelSyncAtomics
import PageFrames
import Scenarios

/// The kernel's page frames and heap: bootMemory has set them up, or panicked.
var bootFrames: PageFrameAllocator {
  guard let frames = kernelMemory.frames else { Machine.panic("testkernel", KernelMemory.notSetUpReason, 0) }
  return frames
}
var bootHeap: Heap {
  guard let heap = kernelMemory.heap else { Machine.panic("testkernel", KernelMemory.notSetUpReason, 0) }
  return heap
}

/// Whether `text` occurs in the first `length` bytes of `bytes`.
func contains(_ bytes: UnsafeRawBufferPointer, _ length: Int, _ text: StaticString) -> Bool {
  let needle = text.utf8Start
  let count = text.utf8CodeUnitCount
  guard count <= length else { return false }
  for start in 0...(length - count) {
    var match = true
    for i in 0..<count where bytes[start + i] != needle[i] { match = false; break }
    if match { return true }
  }
  return false
}

/// bzero against a byte-by-byte reference: sizes 0...4100 at five start offsets, with
/// guard bytes on both sides that must survive, in `pages` (two pages, freed here).
func bzeroCase(_ pages: UnsafeMutableRawPointer) -> Expectations {
  var e = Expectations()
  let buffer = pages.assumingMemoryBound(to: UInt8.self)
  let guardBytes = 64
  for offset in [0, 1, 3, 8, 15] {
    var size = 0
    while size <= 4100 {
      let start = buffer + guardBytes + offset
      let total = size + 2 * guardBytes
      (start - guardBytes).initialize(repeating: 0xA5, count: total)
      bzero(start, size)
      var good = true
      for i in 0..<size where start[i] != 0 { good = false }
      for i in 1...guardBytes where (start - i).pointee != 0xA5 || start[size + i - 1] != 0xA5 { good = false }
      e.expect(good, "bzero differs from the reference (size)", UInt(size))
      if !good { break }
      size += 1
    }
  }
  freePages(UnsafeMutableRawPointer(buffer), order: 1)
  return e
}

/// Pages the every-page case takes with `quick` (128 MiB): enough to cross the first
/// RAM ranges and reservations, and the same time on every machine.
let quickPageLimit = 32_768

/// Every free page allocated once (with `limit`, that many at most), patterned, checked,
/// freed; the count comes back. No page handed out lies outside the RAM ranges firmware
/// reported or touches a reserved range (firmware's, the kernel's, the page array's, the
/// heap's).
func everyPageCase(_ layout: BootLayout, limit: Int? = nil) -> Expectations {
  var e = Expectations()
  let memory = layout.memory
  var misplaced = 0
  let before = bootFrames.freePageCount
  let wanted = min(before, limit ?? before)
  var head: UnsafeMutableRawPointer? = nil
  var count = 0
  var zeroed = true
  while count < wanted, let page = allocPage() {
    let physical = UInt(bitPattern: page)
    let pageRange = PhysicalRange(start: physical, end: physical + UInt(Page.size))
    if memory.ramRange(containing: physical) == nil || memory.firstReservation(overlapping: pageRange) != nil { misplaced += 1 }
    if page.load(fromByteOffset: 8, as: UInt64.self) != 0 || page.load(fromByteOffset: 4088, as: UInt64.self) != 0 { zeroed = false }
    page.storeBytes(of: head, as: UnsafeMutableRawPointer?.self)
    page.storeBytes(of: UInt64(UInt(bitPattern: page)) ^ 0xDEAD_BEEF, toByteOffset: 8, as: UInt64.self)
    page.storeBytes(of: UInt64(UInt(bitPattern: page)), toByteOffset: 4088, as: UInt64.self)
    head = page
    count += 1
  }
  e.expect(zeroed, "allocPage returned a page that was not zeroed", 0)
  e.expect(misplaced == 0, "allocPage returned a page in a hole or a reserved range", UInt(misplaced))
  e.expect(count == wanted && bootFrames.freePageCount == before - wanted, "every free page handed out", UInt(count))
  var patternIntact = true
  var freed = 0
  while let page = head {
    let address = UInt64(UInt(bitPattern: page))
    if page.load(fromByteOffset: 8, as: UInt64.self) != address ^ 0xDEAD_BEEF
      || page.load(fromByteOffset: 4088, as: UInt64.self) != address
    { patternIntact = false }
    head = page.load(as: UnsafeMutableRawPointer?.self)
    freePage(page)
    freed += 1
  }
  e.expect(patternIntact, "a page's pattern changed: handed out twice", 0)
  e.expect(freed == count && bootFrames.freePageCount == before, "pages lost", UInt(bootFrames.freePageCount))
  e.expect(bootFrames.checkInvariants() == nil, "page invariants after exhaustion", 0)
  return e
}

/// How far below the RAM's size the huge requests of the kmalloc case start: less than
/// the image and page array, which are never free.
let hugeRequestSpread = 16384

/// The kernel heap through kmalloc/kfree/kcalloc/krealloc/kmallocAligned.
func kmallocCase() -> Expectations {
  var e = Expectations()
  var blocks: [UnsafeMutableRawPointer?] = []
  blocks.reserveCapacity(200)  // the array's own storage is on the heap too
  let before = bootHeap.statistics.usedBytes
  for i in 0..<200 {
    let p = kmalloc(i * 37 % 3000)
    e.expect(p != nil && UInt(bitPattern: p) & 15 == 0, "kmalloc aligned", UInt(i))
    blocks.append(p)
  }
  let beforeHuge = bootHeap.statistics
  // More than all the RAM the allocator manages (its pages include the image and the
  // page array, so none of these sizes can be free): nil on every machine.
  let ramBytes = bootFrames.pageCount << Page.shift
  for size in ramBytes - hugeRequestSpread...ramBytes + 16 {
    let p = kmalloc(size)
    e.expect(p == nil, "huge kmalloc is nil", UInt(size))
    kfree(p)
  }
  for size in [-1, Int.min, Int.max, Int.max - 15, 1 << 40, 1 << 62] {
    let blocks = (kmalloc(size), krealloc(nil, size), kmallocAligned(size, 4096))
    e.expect(blocks.0 == nil && blocks.1 == nil && blocks.2 == nil, "impossible size is nil", UInt(bitPattern: size))
    kfree(blocks.0)
    kfree(blocks.1)
    kfree(blocks.2)
  }
  e.expect(bootHeap.statistics == beforeHuge, "huge kmallocs changed the heap", 0)
  let aligned = kmallocAligned(100, 4096)
  e.expect(aligned != nil && Page.isAligned(UInt(bitPattern: aligned)), "kmallocAligned 4096", 0)
  let zeroed = kcalloc(10, 100)!
  var allZero = true
  for i in 0..<1000 where zeroed.load(fromByteOffset: i, as: UInt8.self) != 0 { allZero = false }
  e.expect(allZero, "kcalloc zeroes", 0)
  let grown = krealloc(zeroed, 5000)
  e.expect(grown != nil, "krealloc grows", 0)
  for p in blocks { kfree(p) }
  kfree(aligned)
  kfree(grown)
  kfree(nil)
  e.expect(heapCheck() == nil, "heapCheck after kmalloc case", 0)
  e.expect(bootHeap.statistics.usedBytes == before, "kmalloc case leaked", UInt(bootHeap.statistics.usedBytes))
  return e
}

/// The kernel's own heap grows from page runs past its first 1 MiB and gives them back;
/// large requests (64 MiB, and 256 MiB with 512 MiB of RAM or more) are page runs of
/// their own, whose pages all come back on kfree.
func heapGrowthCase() -> Expectations {
  var e = Expectations()
  let frames = bootFrames
  let freeBefore = frames.freePageCount
  var head: UnsafeMutableRawPointer? = nil
  for _ in 0..<40 {
    guard let p = kmalloc(100 << 10) else { break }
    p.storeBytes(of: head, as: UnsafeMutableRawPointer?.self)
    head = p
  }
  let grown = bootHeap.statistics
  e.expect(grown.claimedBytes > 4 << 20 && grown.arenas > 1, "heap grows past 1 MiB from page runs", UInt(grown.claimedBytes))
  e.expect(frames.count(.heap) << Page.shift >= grown.claimedBytes, "growth pages are .heap in the page array", UInt(frames.count(.heap)))
  while let p = head {
    head = p.load(as: UnsafeMutableRawPointer?.self)
    kfree(p)
  }
  e.expect(heapCheck() == nil && frames.freePageCount == freeBefore, "growth pages given back", UInt(frames.freePageCount))
  for bytes in [64 << 20, 256 << 20] where frames.pageCount << Page.shift >= 512 << 20 || bytes == 64 << 20 {
    // The request needs one free run of its size; a machine without one skips it.
    guard contiguousRunFree(bytes: bytes) else {
      skipForMemory("kernel.heap_growth_and_large kmalloc", bytes: bytes)
      continue
    }
    guard let p = kmalloc(bytes) else {
      e.expect(false, "large kmalloc right after boot failed (bytes)", UInt(bytes))
      continue
    }
    e.expect(frames.owner(ofPhysical: UInt(bitPattern: p) + UInt(bytes) - 1) == .heapLarge, "large kmalloc is a .heapLarge run", UInt(bytes))
    p.storeBytes(of: 0xA5, as: UInt8.self)
    p.storeBytes(of: 0x5A, toByteOffset: bytes - 1, as: UInt8.self)
    e.expect(p.load(as: UInt8.self) == 0xA5 && p.load(fromByteOffset: bytes - 1, as: UInt8.self) == 0x5A, "large kmalloc memory", UInt(bytes))
    kfree(p)
    e.expect(frames.freePageCount == freeBefore, "every page back after a large kfree", UInt(bytes))
  }
  e.expect(frames.checkInvariants() == nil, "page invariants after growth and large requests", 0)
  return e
}

/// Whether a run of `bytes` (page aligned) is free right now: taken and given back.
/// - Complexity: that of `allocContiguous`.
func contiguousRunFree(bytes: Int) -> Bool {
  let pages = bytes >> Page.shift
  guard let run = bootFrames.allocContiguous(pages: pages, zeroed: false) else { return false }
  freeContiguous(run, pages: pages)
  return true
}

nonisolated(unsafe) var lastReport: BadInputReport?


/// The last report came from `function`, for `reason`, at `address`; then forgets it.
func expectReport(_ function: StaticString, _ reason: StaticString, _ address: UInt, _ e: inout Expectations, _ message: StaticString) {
  let report = lastReport
  e.expect(report != nil && report!.address == address, message, address)
  e.expect(report != nil && sameText(report!.function, function) && sameText(report!.reason, reason), message, 0)
  lastReport = nil
}

/// Bad input goes to the handler with the function's name and the reason, and nothing
/// changes.
func badInputCase() -> Expectations {
  var e = Expectations()
  let panicHandler = badInputHandler
  badInputHandler = { report in lastReport = report }
  let p = kmalloc(64)!
  kfree(p + 8)
  expectReport("kfree", HeapError.Reason.misaligned.text, UInt(bitPattern: p + 8), &e, "kfree reports a misaligned pointer")
  kfree(p + 32)
  expectReport("kfree", HeapError.Reason.interiorPointer.text, UInt(bitPattern: p + 32), &e, "kfree reports an interior pointer")
  kfree(p)
  kfree(p)
  expectReport("kfree", HeapError.Reason.doubleFree.text, UInt(bitPattern: p), &e, "kfree reports a double free")
  let kernelPage = UnsafeMutableRawPointer(bitPattern: BoardPlatform().kernelImage.start)!
  let before = bootFrames.freePageCount
  freePage(kernelPage)
  expectReport("freePage", PageFrameError.Reason.reserved.text, BoardPlatform().kernelImage.start, &e, "freePage reports a kernel page")
  let page = allocPage()!
  freePage(page)
  freePage(page)
  expectReport("freePage", PageFrameError.Reason.notAllocated.text, UInt(bitPattern: page), &e, "freePage reports a double free")
  // The heap's pages and large allocations belong to the heap, not to freePage.
  let heapPage = Page.roundDown(UInt(bitPattern: p))
  freePage(UnsafeMutableRawPointer(bitPattern: heapPage)!)
  expectReport("freePage", PageFrameError.Reason.wrongOwner.text, heapPage, &e, "freePage reports a heap page")
  let large = kmalloc(1 << 20)!
  kfree(large + Page.size)
  expectReport("kfree", HeapError.Reason.interiorPointer.text, UInt(bitPattern: large) + UInt(Page.size), &e, "kfree reports a pointer inside a large allocation")
  kfree(large)
  kfree(large)
  expectReport("kfree", HeapError.Reason.doubleFree.text, UInt(bitPattern: large), &e, "kfree reports a large double free")
  // Object caches: the wrong door, a destroy with live objects.
  let cache = kmemCacheCreate(objectSize: 48)!
  let object = kmemCacheAlloc(cache)!
  let small = kmalloc(48)!
  kmemCacheFree(cache, small)
  expectReport("kmemCacheFree", HeapError.Reason.wrongCache.text, UInt(bitPattern: small), &e, "kmemCacheFree reports a kmalloc object")
  kfree(object)
  expectReport("kfree", HeapError.Reason.wrongCache.text, UInt(bitPattern: object), &e, "kfree reports an object-cache object")
  e.expect(!kmemCacheDestroy(cache), "destroy refused with a live object", 0)
  expectReport("kmemCacheDestroy", HeapError.Reason.cacheInUse.text, lastReport?.address ?? 0, &e, "kmemCacheDestroy reports live objects")
  kmemCacheFree(cache, object)
  e.expect(kmemCacheDestroy(cache) && lastReport == nil, "an empty cache is destroyed", 0)
  kfree(small)
  e.expect(allocPages(order: 0, owner: .kernel) == nil, "allocPages refuses the kernel owner", 0)
  expectReport("allocPages", KernelMemory.badOwnerReason, UInt(PageOwner.kernel.rawValue), &e, "allocPages reports an owner it does not accept")
  // An object that memInit never set up reports every use.
  let unset = KernelMemory()
  e.expect(unset.allocate(16, function: "kmalloc") == nil, "kmalloc on memory not set up", 0)
  expectReport("kmalloc", KernelMemory.notSetUpReason, 0, &e, "kmalloc before memInit is reported")
  e.expect(unset.allocPages(order: 0, owner: .allocated, function: "allocPage") == nil, "allocPage on memory not set up", 0)
  expectReport("allocPage", KernelMemory.notSetUpReason, 0, &e, "allocPage before memInit is reported")
  e.expect(bootFrames.freePageCount == before && bootFrames.checkInvariants() == nil, "bad frees changed the allocator", 0)
  e.expect(heapCheck() == nil, "bad frees changed the heap", 0)
  badInputHandler = panicHandler
  return e
}

final class Node {
  let value: Int
  var next: Node?
  init(_ value: Int, _ next: Node?) {
    self.value = value
    self.next = next
  }
}

/// Classes, Array and Dictionary allocate through posix_memalign/free into the heap:
/// the heap's own counters must show this case's allocations while they are alive
/// (class instances in the size classes' slabs, the array's buffer in a TLSF block).
func swiftRuntimeCase() -> Expectations {
  var e = Expectations()
  let before = bootHeap.statistics
  do {
    var numbers: [Int] = []
    for i in 0..<10_000 { numbers.append(i &* 7919 % 10_007) }
    numbers.sort()
    e.expect(numbers.first == 0 && numbers.count == 10_000, "array sorted", UInt(numbers.count))
    var table: [Int: Int] = [:]
    for i in 0..<2_000 { table[i] = i * i }
    var sum = 0
    for (_, value) in table { sum += value }
    e.expect(table.count == 2_000 && table[1_999] == 1_999 * 1_999, "dictionary lookups", UInt(table.count))
    e.expect(sum == 2_664_667_000, "dictionary sum", UInt(sum))
    var list: Node? = nil
    for i in 0..<1_000 { list = Node(i, list) }
    // Alive now: the 10,000-Int array (80,000 bytes), the dictionary, 1,000 nodes.
    let during = bootHeap.statistics
    e.expect(during.slabObjects >= before.slabObjects + 1_000, "1,000 class instances are slab objects", UInt(during.slabObjects - before.slabObjects))
    // The array's buffer (above the slab limit) is a TLSF block or a large run.
    let grown = during.usedBytes + during.largeBytes - before.usedBytes - before.largeBytes
    e.expect(grown >= 80_000, "the array is heap bytes", UInt(grown))
    var total = 0
    while let node = list { total += node.value; list = node.next }
    e.expect(total == 499_500, "class instances", UInt(total))
  }
  e.expect(heapCheck() == nil, "heapCheck after the Swift workload", 0)
  let after = bootHeap.statistics
  e.expect(after.allocatedBlocks == before.allocatedBlocks && after.usedBytes == before.usedBytes && after.slabObjects == before.slabObjects,
    "Swift objects freed back to the heap", UInt(after.slabObjects))
  return e
}

/// How the kernel tells its cores apart (`CPU.install`): the boards' per-CPU register,
/// one CPU, a function, nothing installed, and numbers out of range from the register and
/// from a function, each caught and read as the count. kmalloc and kfree work under each;
/// the one-time lines go through putchar, captured here. The other cores are parked, so
/// the numbering may change under the boot core alone.
func cpuNumberingCase() -> Expectations {
  var e = Expectations()
  let board = BoardPlatform()
  // The boot flow installs a count of the cores that can come online: at least those
  // online now, at most the board's maximum.
  let cores = CPU.count
  e.expect(CPU.numbering.map { if case .perCPURegister = $0 { true } else { false } } == true,
    "the boot flow installed the per-CPU register", 0)
  e.expect(cores >= board.onlineCores && cores <= board.maximumCores && CPU.current == 0,
    "the boot core is CPU 0 of a count between the cores online and maximumCores", UInt(cores))
  e.expect(!CPU.install(.threads, count: 4), "thread numbers are refused on bare metal", 0)
  e.expect(!CPU.install(.single, count: 0), "a count of 0 is refused", 0)
  func allocates(_ message: StaticString) {
    let p = kmalloc(200)
    e.expect(p != nil, message, UInt(CPU.current))
    kfree(p)
  }
  /// Runs `body` with putchar's output captured; whether `text` came out.
  func says(_ text: StaticString, _ body: () -> Void) -> Bool {
    arch_debug_capture(1)
    body()
    arch_debug_capture(0)
    guard let said = arch_debug_buffer() else { return false }
    var length = 0
    while said[length] != 0 { length += 1 }
    return contains(UnsafeRawBufferPointer(start: UnsafeRawPointer(said), count: length), length, text)
  }
  e.expect(CPU.install(.single, count: 1) && CPU.current == 0, "one CPU: always 0", UInt(CPU.current))
  allocates("kmalloc as one CPU")
  e.expect(CPU.install(.function({ 2 }), count: 4) && CPU.current == 2, "a function's number", UInt(CPU.current))
  allocates("kmalloc as CPU 2 of a function")
  var number = 0
  e.expect(says("CPU.current: number out of range 0x0000004d") {
    _ = CPU.install(.function({ 77 }), count: 4)
    number = CPU.current
  }, "a function's number 77 of 4 is said", 0)
  e.expect(number == 4, "a function's number 77 of 4 read as 4", UInt(number))
  allocates("kmalloc with a refused number")
  if let block = arch_cpu_block(0) {
    block.pointee.cpu = UInt64(cores) + 1  // one past the count
    e.expect(CPU.install(.perCPURegister, count: cores) && CPU.current == cores, "a register number past the count read as the count", UInt(CPU.current))
    allocates("kmalloc with a refused register number")
    block.pointee.cpu = 0
  }
  // Nothing installed, as a kernel that never calls CPU.install: one CPU, said once.
  ks_cpu_numbering.register_limit = 0
  ks_cpu_numbering.limit = 1
  ks_cpu_numbering.kind = UInt32(KS_CPU_UNSET)
  e.expect(CPU.numbering == nil, "nothing installed reads as nil", 0)
  e.expect(says("CPU.current: no CPU numbering installed (CPU.install); running as one CPU") {
    number = CPU.current
  }, "running as one CPU is said", 0)
  e.expect(number == 0, "nothing installed: CPU 0", UInt(number))
  allocates("kmalloc with nothing installed")
  e.expect(!says("no CPU numbering") { number = CPU.current }, "and said only once", 0)
  e.expect(CPU.install(.perCPURegister, count: cores) && CPU.current == 0, "the per-CPU register back", UInt(CPU.current))
  e.expect(heapCheck() == nil, "heapCheck after every numbering", 0)
  return e
}

#endif
