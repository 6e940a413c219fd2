// The `smp` case: every online core (the boot core too) runs the shared SMP stress
// (`Scenarios.SMPStress`, the workload the host runs with threads) on the kernel's own
// heap and page frames at once; then the boot core drains every cache and checks with
// `SMPStress.verify` that nothing was lost or handed out twice.
#if os(none)
import KernelMemory
import Arch
import ArchSupport
import KernelBoot
import KernelHeap
import KernelSyncAtomics
import PageFrames
import Scenarios

/// The board the test kernel runs on, and the cores it can have.
private let board = BoardPlatform()
private let maximumCores = board.maximumCores

/// Cores the stress needs: a third of each core's frees go to another core.
let smpMinimumCores = 2

/// Operations per core when the command line gives no `ops=N`.
let smpDefaultOperations = 250_000
/// How long the boot core waits for the other cores to finish after its own part.
let smpFinishLimitSeconds: UInt64 = 600

/// What the boot core sets up before the start: read by every core after it sees the
/// start word (acquire), never written after.
struct SMPCaseRun {
  let stress: SMPStress
  /// Bit n set: core n takes part (it is online). Worker numbers are ranks in this mask.
  let members: UInt
  let heap: Heap
  let frames: PageFrameAllocator
  let cache: ObjectCache
  let seed: UInt64
  let operations: Int
  /// Each worker's outcome, stored before its `finished` word is set.
  let outcomes: UnsafeMutablePointer<SMPStressOutcome>
  let finished: UnsafeMutablePointer<UInt32>

  /// Bytes after the stress's shared memory: the outcomes, then the finished words.
  static var extraBytes: Int {
    maximumCores * (MemoryLayout<SMPStressOutcome>.stride + MemoryLayout<UInt32>.stride)
  }

  /// Core `cpu`'s worker number: how many members come before it.
  func worker(_ cpu: Int) -> Int { (members & ((1 << UInt(cpu)) - 1)).nonzeroBitCount }
}

/// The run, once the boot core has set it up; nil before.
nonisolated(unsafe) var smpRun: SMPCaseRun? = nil

/// The start word: 0 while the boot core sets up, then `smpStart` (run) or `smpAbort`.
nonisolated(unsafe) var smpStartWord: UInt32 = 0
let smpStart: UInt32 = 1
let smpAbort: UInt32 = 2

/// Sets the start word (release: `smpRun` is visible to whoever sees it).
func smpSignal(_ value: UInt32) {
  withUnsafeMutablePointer(to: &smpStartWord) { ks_store_release($0, value) }
}

/// The entry the other cores run (`bootMemory(secondaryEntry:)`): waits for the boot
/// core's start, runs its part, returns (the core parks).
let smpSecondaryEntry: SecondaryEntry = { cpu in
  let start = withUnsafeMutablePointer(to: &smpStartWord) { word in
    var value = ks_load_acquire(word)
    while value == 0 {
      arch_cpu_relax()
      value = ks_load_acquire(word)
    }
    return value
  }
  guard start == smpStart, let run = smpRun else { return }
  smpWork(run, cpu: cpu)
}

/// Core `cpu`'s part: the stress (which ends at a barrier with nothing live), a drain
/// of every cache, then its outcome and its finished word.
func smpWork(_ run: SMPCaseRun, cpu: Int) {
  let worker = run.worker(cpu)
  let outcome = run.stress.run(
    cpu: worker, heap: run.heap, frames: run.frames, cache: run.cache, seed: run.seed, operations: run.operations)
  vmStressWork(worker: worker, cores: run.members.nonzeroBitCount)
  kmemDrainCaches()
  run.outcomes[worker] = outcome
  ks_store_release(run.finished + worker, 1)
}

/// Runs the stress with `operations` operations per core from `seed` and returns the
/// checks of `SMPStress.verify` against the figures of the quiet machine before the
/// start. Prints `smp: N ops on M cores, K of F frees cross-core, ok` (or the failure
/// count instead of `ok`) and the time on the virtual counter.
///
/// Preconditions: called once, by the boot core, after `bootMemory(secondaryEntry:
/// smpSecondaryEntry)`; the other online cores are waiting for the start word.
/// - Complexity: O(operations × cores / parallelism) plus the checks.
func smpStressCase(seed: UInt64, operations: Int) -> Expectations {
  var e = Expectations()
  var members: UInt = 0
  for cpu in 0..<maximumCores where board.isCoreOnline(cpu) { members |= 1 << UInt(cpu) }
  let cores = members.nonzeroBitCount
  let sharedBytes = SMPStress.sharedBytes(cpus: cores)
  let pages = Page.count(forBytes: sharedBytes + SMPCaseRun.extraBytes)
  guard let heap = kernelMemory.heap, let frames = kernelMemory.frames,
    let area = allocContiguous(pages: pages), let cache = kmemCacheCreate(objectSize: SMPStress.cacheObjectSize)
  else {
    smpSignal(smpAbort)
    e.expect(false, "smp: no memory for the stress's area or object cache (pages)", UInt(pages))
    return e
  }
  let outcomes = (area + sharedBytes).bindMemory(to: SMPStressOutcome.self, capacity: maximumCores)
  outcomes.initialize(repeating: SMPStressOutcome(), count: maximumCores)
  let finished = (area + sharedBytes + maximumCores * MemoryLayout<SMPStressOutcome>.stride)
    .bindMemory(to: UInt32.self, capacity: maximumCores)
  finished.initialize(repeating: 0, count: maximumCores)
  let run = SMPCaseRun(
    stress: SMPStress(memory: area, cpus: cores), members: members, heap: heap, frames: frames, cache: cache,
    seed: seed, operations: operations, outcomes: outcomes, finished: finished)
  smpRun = run
  let vmReady = vmStressPrepare(cores: cores)
  e.expect(vmReady, "vm: no kernel map or no memory for the stress", 0)

  kmemDrainCaches()
  let before = SMPStress.QuietFigures(heap: heap, frames: frames)
  kput("smp: ")
  kputDecimal(UInt(operations))
  kput(" operations per core on ")
  kputDecimal(UInt(cores))
  kput(" cores, seed ")
  kputDecimal(UInt(seed))
  kput(", ")
  kputDecimal(UInt(before.freePages))
  kput(" free pages\n")

  let start = Clock.ticks
  smpSignal(smpStart)
  smpWork(run, cpu: 0)
  let missing = smpWaitForWorkers(run, cores: cores)
  let elapsed = Clock.nanoseconds(since: start)
  e.expect(missing == 0, "smp: workers that did not finish in time (mask)", missing)
  // A core still runs: nothing below is safe to check.
  guard missing == 0 else { return e }

  kmemDrainCaches()
  let total = SMPStress.verify(
    UnsafeBufferPointer(start: outcomes, count: cores), operations: operations,
    before: before, heap: heap, frames: frames, cache: cache, &e)
  kput("smp: ")
  kputDecimal(UInt(total.operations))
  kput(" ops on ")
  kputDecimal(UInt(cores))
  kput(" cores, ")
  kputDecimal(UInt(total.crossFrees))
  kput(" of ")
  kputDecimal(UInt(total.frees))
  kput(" frees cross-core, ")
  if e.passed {
    kput("ok\n")
  } else {
    kputDecimal(UInt(e.failures))
    kput(" failures\n")
  }
  kput("smp: ")
  kputDecimal(UInt(elapsed / 1_000_000))
  kput(" ms on the virtual counter, ")
  kputDecimal(UInt(frames.freePageCount))
  kput(" free pages\n")

  // After the figures: the stress's own pages were counted as in use in both.
  vmStressFinish(cores: cores, &e)
  e.expect(kmemCacheDestroy(cache), "smp: the object cache still has objects", 0)
  freeContiguous(area, pages: pages)
  return e
}

/// Waits until every worker has set its finished word, at most `smpFinishLimitSeconds`.
/// (The stress's own barriers wait without a limit: a core that hangs inside it is
/// caught by the harness's timeout.)
/// - Returns: 0, or the mask of workers that had not finished.
func smpWaitForWorkers(_ run: SMPCaseRun, cores: Int) -> UInt {
  let limit = Clock.frequency * smpFinishLimitSeconds
  let start = Clock.ticks
  while true {
    var missing: UInt = 0
    for worker in 0..<cores where ks_load_acquire(run.finished + worker) == 0 { missing |= 1 << UInt(worker) }
    if missing == 0 || Clock.ticks &- start > limit { return missing }
    arch_cpu_relax()
  }
}

#endif
