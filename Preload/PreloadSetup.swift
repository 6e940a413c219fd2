// Sets up the kernel's page-frame allocator and heap (PageFrames, KernelHeap: the same
// sources the kernel runs) over one large anonymous mmap reservation, for the malloc
// preload library (Preload/shim.c exports the C names). Compiled in Embedded Swift for
// x86_64-unknown-linux-gnu by scripts/build_preload.sh; nothing here allocates.
//
// The reservation, physical address = virtual address (direct map offset 0):
//
//   base ─► +------------------------------+
//           | page metadata (16 B a page)  |  outside the managed range: no page
//           |                              |  entries of its own to write
//           +------------------------------+
//           | (gap up to a 4 MiB boundary) |
//  first ─► +------------------------------+  managed range [first, end)
//           | initial heap (1 MiB)         |  reserved as .heap
//           +------------------------------+
//           | released chunk by chunk      |  64 MiB at a time, as allocations fail
//   end  ─► +------------------------------+
//
// Fresh anonymous memory reads as zero and costs no RSS until written, so the metadata
// array is not zeroed (`metadataIsZero`) and only released, used pages are touched.
import KernelHeap
import KernelMemory
import MemInit
import KmallocPreloadC
import PageFrames

/// Where the next unreleased chunk of the managed range begins, and its end.
nonisolated(unsafe) var releaseCursor: UInt = 0
nonisolated(unsafe) var releaseEnd: UInt = 0
/// Bytes released per step (a multiple of 4 MiB).
nonisolated(unsafe) var releaseChunk: UInt = 64 << 20
/// Chunks released so far.
nonisolated(unsafe) var releasedChunks = 0

/// The largest buddy run: managed-range starts are aligned to it so that every block
/// the page allocator forms is a whole order-10 run.
private let rangeAlignment = UInt(Page.maxOrderPages) << UInt(Page.shift)

private func roundUp(_ value: UInt, _ alignment: UInt) -> UInt { (value + alignment - 1) & ~(alignment - 1) }

/// Lays the page allocator and the heap over `[base, base + bytes)` (page aligned,
/// fresh anonymous memory), installs them as `kernelMemory` and the stderr reporter as
/// `badInputHandler`, and releases the first `chunk` bytes after the initial heap.
/// - Returns: false when the reservation is too small or misaligned (nothing installed).
@_cdecl("kmalloc_setup")
public func kmallocSetup(_ base: UnsafeMutableRawPointer, _ bytes: Int, _ chunk: Int, _ growthPages: Int, _ slabs: Bool) -> Bool {
  let start = UInt(bitPattern: base)
  guard start & Page.offsetMask == 0, bytes > 0, chunk > 0 else { return false }
  let end = (start + UInt(bytes)) & ~Page.offsetMask
  // The metadata for every page of the reservation is an upper bound for the pages
  // managed after it.
  let upperPages = min(Int((end - start) >> UInt(Page.shift)), PageFrameAllocator.maximumPages)
  let first = roundUp(start + UInt(PageFrameAllocator.metadataBytes(pageCount: upperPages)), rangeAlignment)
  let heapBytes = UInt(kernelHeapInitialBytes)
  guard first < end, end - first > heapBytes + rangeAlignment else { return false }
  let pages = min(Int((end - first) >> UInt(Page.shift)), upperPages)
  let last = first + UInt(pages) << UInt(Page.shift)
  var ranges = PhysicalRanges()
  ranges.append(PhysicalRange(start: first, end: last))
  guard let frames = PageFrameAllocator(
    ranges: ranges, metadata: base, directMapOffset: 0, zeroFill: kmalloc_zero_fill, metadataIsZero: true)
  else { return false }
  guard case .success = frames.reserve(start: first, end: first + heapBytes, as: .heap),
    let heap = Heap(
      start: frames.pointer(toPhysical: first), size: Int(heapBytes), zeroFill: kmalloc_zero_fill, frames: frames,
      growthStepPages: growthPages, slabs: slabs)
  else { return false }
  badInputHandler = { report in
    report.function.withUTF8Buffer { function in
      report.reason.withUTF8Buffer { reason in
        kmalloc_report(function.baseAddress!, function.count, reason.baseAddress!, reason.count, report.address)
      }
    }
  }
  installKernelMemory(KernelMemory(frames: frames, heap: heap))
  releaseChunk = roundUp(UInt(chunk), rangeAlignment)
  releaseCursor = first + heapBytes
  releaseEnd = last
  releaseNext(atLeast: 0)
  rememberHeapForThreadCache()
  return true
}

/// Hands the next chunk (or more, for a request larger than a chunk) to the page
/// allocator, when an allocation of `request` bytes failed.
/// - Returns: false when the reservation is used up or could not hold `request` even
///   with everything released (nothing is released then), so the caller fails the call.
@_cdecl("kmalloc_release_more")
public func kmallocReleaseMore(_ request: UInt) -> Bool {
  guard releaseCursor < releaseEnd, let frames = kernelMemory.frames else { return false }
  let remaining = releaseEnd - releaseCursor
  let free = UInt(frames.freePageCount) << UInt(Page.shift)
  // An impossible request must not release the whole reservation (every released
  // 4 MiB block writes one page entry, on a metadata page of its own).
  guard request <= remaining, request - min(request, free) <= remaining else { return false }
  releaseNext(atLeast: request)
  return true
}

/// Releases `[releaseCursor, releaseCursor + n)`: whole chunks, at least `request` bytes
/// plus a 4 MiB run of slack, at most what is left.
private func releaseNext(atLeast request: UInt) {
  guard let frames = kernelMemory.frames else { return }
  let want = max(releaseChunk, roundUp(request + rangeAlignment, releaseChunk))
  let stop = releaseEnd - releaseCursor > want ? releaseCursor + want : releaseEnd
  frames.releaseUnchecked(start: releaseCursor, end: stop)
  releaseCursor = stop
  releasedChunks += 1
}

/// Figures for KMALLOC_STATS, all kept counts (no heap walk at exit): `out[0...4]` =
/// bytes released to the page allocator, release steps, free pages, pages of heap
/// arenas, pages of large allocations.
@_cdecl("kmalloc_counts")
public func kmallocCounts(_ out: UnsafeMutablePointer<Int>) {
  guard let frames = kernelMemory.frames else { return }
  out[0] = Int(releaseCursor - frames.base)
  out[1] = releasedChunks
  out[2] = frames.freePageCount
  out[3] = frames.count(.heap)
  out[4] = frames.count(.heapLarge)
}

/// Takes every lock of the heap, then of the page allocator, then the sampling
/// detector's pool lock (a leaf), and keeps them (the shim's pthread_atfork prepare
/// handler): a fork then never copies a lock another thread holds.
/// - Returns: false, with nothing held, when not set up or a lock refused (this thread is
///   inside the allocator: a fork from a signal handler).
@_cdecl("kmalloc_fork_lock")
public func kmallocForkLock() -> Bool {
  guard let heap = kernelMemory.heap, let frames = kernelMemory.frames, heap.lockAll() else { return false }
  guard frames.lockAll() else {
    heap.unlockAll()
    return false
  }
  if let pool = heap.guardedPool, !pool.lockAll() {
    frames.unlockAll()
    heap.unlockAll()
    return false
  }
  return true
}

/// Releases what `kmalloc_fork_lock` took, in the parent and in the child (whose thread
/// still has the number it took them under).
@_cdecl("kmalloc_fork_unlock")
public func kmallocForkUnlock() {
  guard let heap = kernelMemory.heap, let frames = kernelMemory.frames else { return }
  heap.guardedPool?.unlockAll()
  frames.unlockAll()
  heap.unlockAll()
}

// MARK: The sampling detector (KMALLOC_SAMPLE)

/// The address range and control block a pool of `slots` slots needs, for the heap's
/// CPU slots: `out[0]` = bytes of address space (`GuardedPool.rangeBytes`), `out[1]` =
/// bytes of control block. False when the heap is not set up or `slots` is out of range.
@_cdecl("kmalloc_pool_bytes")
public func kmallocPoolBytes(_ slots: Int, _ out: UnsafeMutablePointer<Int>) -> Bool {
  guard let heap = kernelMemory.heap, slots >= 1, slots <= GuardedPool.maximumSlots else { return false }
  out[0] = GuardedPool.rangeBytes(slots: slots)
  out[1] = GuardedPool.controlBytes(slots: slots, cpuSlots: heap.slots)
  return true
}

/// Builds the sampling detector over `range` (`kmalloc_pool_bytes` bytes, PROT_NONE,
/// page aligned) and `control` (read-write, 64-byte aligned), with the shim's hooks
/// (mprotect, glibc's backtrace, stderr, abort), and attaches it to the heap: one
/// allocation in `interval` (`GuardedPool.defaultInterval` when below 1) of each size
/// class on each CPU slot comes from it from now on.
/// - Returns: false when the heap is not set up, a parameter is out of range, or a pool
///   is attached already (nothing attached then).
@_cdecl("kmalloc_pool_setup")
public func kmallocPoolSetup(_ range: UnsafeMutableRawPointer, _ control: UnsafeMutableRawPointer, _ slots: Int, _ interval: Int) -> Bool {
  guard let heap = kernelMemory.heap else { return false }
  let hooks = GuardedPoolHooks(
    context: nil, setAccessible: kmalloc_pool_protect, captureStack: kmalloc_pool_capture, write: kmalloc_pool_write,
    fatal: kmalloc_pool_fatal)
  guard let pool = GuardedPool(
    base: UInt(bitPattern: range), slots: slots, interval: interval >= 1 ? interval : GuardedPool.defaultInterval,
    cpuSlots: heap.slots, control: control, hooks: hooks)
  else { return false }
  return heap.attach(pool)
}

/// The shim's SIGSEGV handler, for a fault at `address` in the pool's range: prints the
/// report (`GuardedPool.reportFault`) and calls the fatal hook, which aborts. False,
/// printing nothing, when no pool is attached or the address is outside it.
@_cdecl("kmalloc_pool_fault")
public func kmallocPoolFault(_ address: UInt, _ isWrite: Bool) -> Bool {
  guard let pool = kernelMemory.heap?.guardedPool else { return false }
  return pool.reportFault(at: address, isWrite: isWrite)
}

/// malloc_usable_size of a pointer in the pool's range: the size asked for, for a live
/// object's start. Anything else (a freed object, an interior pointer, a guard page) is
/// reported as the read of that address it is (a use after free for a freed object),
/// and the fatal hook aborts; -1 when no pool is attached.
@_cdecl("kmalloc_pool_usable")
public func kmallocPoolUsable(_ pointer: UnsafeMutableRawPointer) -> Int {
  guard let pool = kernelMemory.heap?.guardedPool else { return -1 }
  if let size = pool.size(of: pointer) { return size }
  _ = pool.reportFault(at: UInt(bitPattern: pointer), isWrite: false)
  return 0
}

/// After an allocation returned `pointer`, a pool object: records `depth` frames of the
/// caller's stack as its allocation stack (the pool's own capture, inside the Swift
/// frames, cannot walk past them).
@_cdecl("kmalloc_pool_note_allocation")
public func kmallocPoolNoteAllocation(_ pointer: UnsafeMutableRawPointer, _ frames: UnsafePointer<UInt>, _ depth: Int) {
  kernelMemory.heap?.guardedPool?.recordAllocationStack(of: pointer, frames: frames, depth: depth)
}

/// The pool's counts for KMALLOC_STATS: `out[0...3]` = objects live, allocations
/// served, sampled allocations it could not serve, the interval. False when no pool is
/// attached.
@_cdecl("kmalloc_pool_counts")
public func kmallocPoolCounts(_ out: UnsafeMutablePointer<Int>) -> Bool {
  guard let pool = kernelMemory.heap?.guardedPool else { return false }
  let counts = pool.statistics
  out[0] = counts.live
  out[1] = counts.sampled
  out[2] = counts.missed
  out[3] = pool.interval
  return true
}
