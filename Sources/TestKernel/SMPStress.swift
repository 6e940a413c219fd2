// The `smp` case: every online core (the boot core too) runs the stress of
// SMPWorker.swift at once; then the boot core checks that the heap is sound, that the
// page accounting adds up and that every page came back.
#if arch(arm64) && os(none)
import Arch
import KernelBoot
import KernelHeap
import PageFrames
import Scenarios

/// Runs the stress with `operations` operations per core from `seed`, prints
/// `smp: N ops on M cores, K cross-core frees, ok` (or the failure count instead of
/// `ok`), and returns the checks: no tag mismatch or failed allocation on any core,
/// both barriers passed, `heapCheck()` nil, every page owned by exactly one kind
/// (the owner counts add up to the page count), and the free page count as it was
/// before the start (after `kmemDrainCaches()` both times).
///
/// Preconditions: called once, by the boot core, after `bootMemory(secondaryEntry:
/// smpSecondaryEntry)`; the other online cores are waiting for the start word.
/// - Complexity: O(operations × cores / parallelism) plus the drains.
func smpStressCase(seed: UInt64, operations: Int) -> Expectations {
  var e = Expectations()
  var members: UInt = 0
  for cpu in 0..<Platform.maximumCores where Platform.isCoreOnline(cpu) { members |= 1 << UInt(cpu) }
  guard let frames = kernelMemory.frames, let areas = allocContiguous(pages: SMPRun.totalPages),
    let cache = kmemCacheCreate(objectSize: smpCacheObjectBytes)
  else {
    smpSignal(smpAbort)
    e.expect(false, "smp: no memory for the stress's areas or object cache (pages)", UInt(SMPRun.totalPages))
    return e
  }
  for cpu in 0..<Platform.maximumCores {
    SMPCoreArea(base: areas + (SMPRun.areaPages << Page.shift) * cpu).bind()
  }
  let run = SMPRun(areas: areas, members: members, operations: operations, seed: seed, cache: cache)
  smpRun = run
  kmemDrainCaches()
  let freeBefore = frames.freePageCount
  kput("smp: ")
  kputDecimal(UInt(operations))
  kput(" operations per core on ")
  kputDecimal(UInt(run.cores))
  kput(" cores, seed ")
  kputDecimal(UInt(seed))
  kput(", ")
  kputDecimal(UInt(freeBefore))
  kput(" free pages\n")

  let start = Clock.ticks
  smpSignal(smpStart)
  let everyoneFinished = smpWork(run, cpu: 0)
  let elapsed = Clock.nanoseconds(since: start)
  e.expect(everyoneFinished, "smp: a core did not reach a barrier (see the line above)", 0)
  // The others may still run: nothing below is safe to check.
  guard everyoneFinished else { return e }

  kmemDrainCaches()
  var operationsDone = 0
  var crossFrees = 0
  var failures = 0
  for cpu in 0..<Platform.maximumCores where members & (1 << UInt(cpu)) != 0 {
    let area = run.area(cpu)
    operationsDone += area.load(SMPCoreArea.operationsOffset)
    crossFrees += area.load(SMPCoreArea.crossFreesOffset)
    failures += area.load(SMPCoreArea.failuresOffset)
    e.expect(area.load(SMPCoreArea.operationsOffset) >= operations, "smp: a core did fewer operations than asked (cpu)", UInt(cpu))
  }
  e.expect(failures == 0, "smp: tag mismatches and failed allocations (count)", UInt(failures))
  let heap = heapCheck()
  e.expect(heap == nil, "smp: heapCheck after the stress fails (address)", heap?.address ?? 0)
  var owned = 0
  for owner in PageOwner.allCases { owned += frames.count(owner) }
  e.expect(owned == frames.pageCount, "smp: the owner counts do not add up to the page count (sum)", UInt(owned))
  let freeAfter = frames.freePageCount
  e.expect(freeAfter == freeBefore, "smp: free pages after the stress differ from before (after)", UInt(freeAfter))

  kput("smp: ")
  kputDecimal(UInt(operationsDone))
  kput(" ops on ")
  kputDecimal(UInt(run.cores))
  kput(" cores, ")
  kputDecimal(UInt(crossFrees))
  kput(" cross-core frees, ")
  if e.passed {
    kput("ok\n")
  } else {
    kputDecimal(UInt(e.failures))
    kput(" failures\n")
  }
  kput("smp: ")
  kputDecimal(UInt(elapsed / 1_000_000))
  kput(" ms on the virtual counter, ")
  kputDecimal(UInt(freeAfter))
  kput(" free pages\n")

  e.expect(kmemCacheDestroy(cache), "smp: the object cache still has objects", 0)
  freeContiguous(areas, pages: SMPRun.totalPages)
  return e
}

#endif
