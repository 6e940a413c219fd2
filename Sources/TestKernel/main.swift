// The test kernel: boots like the kernel, then runs the shared scenarios and the
// kernel-only cases, printing one line per case and `N passed, N failed`. QEMU exits
// with 0 only if every case passed. A case the machine cannot run (too little
// contiguous RAM, one core for `smp`) prints `skip <name> (<why>)` instead. Semihosting
// argument `fail-on-purpose` adds a
// failing case, to prove the harness notices; `bench` runs the guest benchmark
// (GuestBench.swift) instead of the cases; `fault=data-abort`, `fault=undefined` and
// `fault=brk` take that exception, which the vectors report (exit status 4);
// `fault=stack-overflow`, `boot-stack-overflow`, `write-text`, `exec-heap` and
// `vmalloc-guard` fault against
// the kernel map (status 4, the report naming the mapping);
// `fault=stack-canary` overwrites a core's stack canary and exits (status 5); `smp`
// runs only the SMP stress on every core (SMPCase.swift; `seed=N`, `ops=N` per core);
// `quick` skips the model's 100,000 operations and bounds the every-page case, so its
// time does not grow with RAM; `scribble` (with `text=HEX`) fills every free page and
// checks the hashes taken at entry (Scribble.swift). Any other word, or a value out of
// range, is refused with the valid words and exit status 2 (Arguments.swift).
#if os(none)
import KernelMemory
import Arch
import ArchSupport
import KernelBoot
import KernelHeap
import Scenarios

/// The semihosting command line (64 bytes at most), read once, before the boot: it
/// decides what the other cores run.
nonisolated(unsafe) var commandLine: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
let commandLineLength = withUnsafeMutableBytes(of: &commandLine) { raw in
  Machine.commandLine(into: raw.bindMemory(to: UInt8.self))
}

/// The command line's words, checked (a bad one is refused after the boot banner).
let arguments = withUnsafeBytes(of: commandLine) { TestArguments($0, commandLineLength) }

/// With `scribble`: the hashes taken now, before memInit has touched RAM.
let entryHashes = arguments.scribble ? EntryHashes.take(textEnd: arguments.textEnd) : nil

nonisolated(unsafe) var passed = 0
nonisolated(unsafe) var failed = 0

func report(_ name: StaticString, _ e: Expectations) {
  if e.passed {
    passed += 1
    kput("ok   ")
    kput(name)
    kput(" (")
    kputDecimal(UInt(e.checks))
    kput(" checks)\n")
  } else {
    failed += 1
    kput("FAIL ")
    kput(name)
    kput(": ")
    kput(e.firstFailure)
    kput(" ")
    kputHex(e.firstValue)
    kput(" (")
    kputDecimal(UInt(e.failures))
    kput(" failures)\n")
  }
}

// With `smp` the other cores wait for the stress (SMPCase.swift); otherwise they
// come online and park.
let smpRequested = arguments.smp && arguments.problem == nil
let bootLayout = bootMemory(secondaryEntry: smpRequested ? smpSecondaryEntry : nil, kfenceInterval: arguments.kfence)
if arguments.problem != nil {
  withUnsafeBytes(of: commandLine) { refuseArguments($0, arguments) }
}

if smpRequested {
  kput("test kernel: smp\n")
  let online = BoardPlatform().onlineCores
  if online < smpMinimumCores {
    // Nothing to cross: the stress's cross-core share cannot be met by one core.
    smpSignal(smpAbort)
    kput("skip kernel.smp_stress (needs 2 or more cores online, ")
    kputDecimal(UInt(online))
    kput(" online)\n")
  } else {
    if let rounds = arguments.vmRounds { vmPrivateRounds = rounds }
    let e = smpStressCase(seed: arguments.seed ?? 1, operations: arguments.operations ?? smpDefaultOperations)
    report("kernel.smp_stress", e)
  }
  kputDecimal(UInt(passed))
  kput(" passed, ")
  kputDecimal(UInt(failed))
  kput(" failed\n")
  Machine.exit(failed == 0 ? 0 : 1)
}

if arguments.bench {
  guestBench()
  Machine.exit(0)
}
// Deliberate faults: the exception vectors must report each and exit with status 4.
if arguments.fault == .dataAbort { arch_fault_data_abort() }
if arguments.fault == .undefined { arch_fault_undefined() }
if arguments.fault == .brk { arch_fault_brk() }
// The kernel map's faults: each report names what the tables say about FAR.
if arguments.fault == .stackOverflow {
  // A kernel stack from vmalloc (as every started core's), run off its low end.
  guard let space = kernelAddressSpace, let stack = try? space.allocateStack(bytes: 16 << 10, cpu: 0) else {
    Machine.panic("fault=stack-overflow", "no kernel map or no stack", 0)
  }
  arch_fault_stack_overflow(stack.top)
}
// The boot core's own stack (the image's), run off its low end into the linker
// script's guard page.
if arguments.fault == .bootStackOverflow { arch_fault_stack_overflow(0) }
if arguments.fault == .writeText { arch_fault_write(arch_kernel_start() + 64) }
if arguments.fault == .executeHeap {
  guard let code = kmalloc(64) else { Machine.panic("fault=exec-heap", "kmalloc failed", 64) }
  arch_fault_execute(UInt(bitPattern: code))
}
if arguments.fault == .vmallocGuard {
  guard let area = vmalloc(16 << 10) else { Machine.panic("fault=vmalloc-guard", "vmalloc failed", 16 << 10) }
  arch_fault_write(UInt(bitPattern: area) + (16 << 10))
}
// Planted memory bugs: the sampling detector must classify each and the kernel exit
// with status 4 (KfenceFaults.swift).
if let bug = arguments.plantedBug { plant(bug) }
// An overwritten stack canary (the last core's, as if its stack had overflowed): the
// exit path must report it with the core's number and exit with status 5.
if arguments.fault == .stackCanary {
  var victim = BoardPlatform().maximumCores - 1
  while victim > 0 && !BoardPlatform().isCoreOnline(victim) { victim -= 1 }
  arch_fault_stack_canary(UInt(victim))
  Machine.exit(0)
}
kput("test kernel\n")

/// Runs `body` over a fresh, zeroed run of `bytes` bytes of real pages, as the host
/// gives a scenario fresh zeroed memory (stale headers from an earlier scenario at the
/// same addresses would change what a bad free finds).
/// - Returns: false, having run nothing, when no run of `bytes` is free.
func withScenarioMemory(seed: UInt64, bytes: Int = ScenarioMemory.standardBytes, _ body: (ScenarioMemory) -> Void) -> Bool {
  let pages = bytes >> Page.shift
  guard let run = bootFrames.allocContiguous(pages: pages, zeroed: true) else { return false }
  body(ScenarioMemory(base: run, bytes: bytes, zeroFill: BoardPlatform().zeroFill, seed: seed))
  freeContiguous(run, pages: pages)
  return true
}

/// Free memory a scenario leaves beside its own run: the scenario's Swift arrays and the
/// heap's growth come from it.
let scenarioHeadroomBytes = 4 << 20

/// Prints `skip <name> (needs N MiB contiguous, M KiB free)`: the machine has no free
/// run that large beside the headroom.
func skipForMemory(_ name: StaticString, bytes: Int) {
  kput("skip ")
  kput(name)
  kput(" (needs ")
  kputDecimal(UInt(bytes >> 20))
  kput(" MiB contiguous, ")
  kputDecimal(UInt(bootFrames.freePageCount) << 2)
  kput(" KiB free)\n")
}

/// Runs the kernel case `name` when `bytes` or more are free; otherwise prints
/// `skip <name> (needs N KiB free, M KiB free)`.
func runCase(_ name: StaticString, needsFree bytes: Int, _ body: () -> Expectations) {
  let free = bootFrames.freePageCount << Page.shift
  guard free >= bytes else {
    kput("skip ")
    kput(name)
    kput(" (needs ")
    kputDecimal(UInt(bytes >> 10))
    kput(" KiB free, ")
    kputDecimal(UInt(free >> 10))
    kput(" KiB free)\n")
    return
  }
  report(name, body())
}

// 0. With `scribble`: every free page written, nothing hashed at entry changed.
if let hashes = entryHashes {
  report("kernel.scribble_free_pages", scribbleCase(hashes))
}

// 1. The shared scenarios, exactly as `swift test` runs them.
for scenario in allScenarios() {
  var e = Expectations()
  let roomy = bootFrames.freePageCount << Page.shift >= scenario.memoryBytes + scenarioHeadroomBytes
  if roomy && withScenarioMemory(seed: 42, bytes: scenario.memoryBytes, { scenario.run($0, &e) }) {
    report(scenario.name, e)
  } else {
    skipForMemory(scenario.name, bytes: scenario.memoryBytes)
  }
}

// 2. The model at 10 seeds x 10,000 operations = 100,000 operations; skipped with
// `quick` (the boots that vary the firmware's memory map: the model runs in a scenario
// run of its own, the same on every map, and takes most of a boot's time).
if arguments.quick {
  kput("skip model.100k_operations (quick)\n")
} else {
  var model = Expectations()
  var ran = bootFrames.freePageCount << Page.shift >= ScenarioMemory.standardBytes + scenarioHeadroomBytes
  for seed in 1...10 where ran {
    ran = withScenarioMemory(seed: UInt64(seed)) { runModel($0, seed: UInt64(seed), operations: modelOperationsPerSeed, &model) }
  }
  if ran { report("model.100k_operations", model) } else { skipForMemory("model.100k_operations", bytes: ScenarioMemory.standardBytes) }
}

// 3. Kernel-only cases.
// Each needs some free memory beside the heap's first 1 MiB: the growth case 40 blocks
// of 100 KiB, the bad-input case a 1 MiB large block and pages.
if let pages = allocPages(order: 1) {
  report("kernel.bzero_vs_bytes", bzeroCase(pages))
} else {
  // The smallest machines (4 MiB) may have no two free pages in a run left by now.
  kput("skip kernel.bzero_vs_bytes (needs 2 contiguous free pages, ")
  kputDecimal(UInt(bootFrames.freePageCount) << 2)
  kput(" KiB free)\n")
}
report("kernel.every_page_once", everyPageCase(bootLayout, limit: arguments.quick ? quickPageLimit : nil))
report("kernel.kmalloc_kfree", kmallocCase())
runCase("kernel.heap_growth_and_large", needsFree: 8 << 20) { heapGrowthCase() }
runCase("kernel.bad_input_reports", needsFree: 2 << 20) { badInputCase() }
runCase("kernel.swift_runtime_on_heap", needsFree: 1 << 20) { swiftRuntimeCase() }
report("kernel.cpu_numbering", cpuNumberingCase())

if arguments.failOnPurpose {
  var e = Expectations()
  e.expect(1 + 1 == 3, "deliberate failure for the harness self-test", 0)
  report("harness.fail_on_purpose", e)
}

kputDecimal(UInt(passed))
kput(" passed, ")
kputDecimal(UInt(failed))
kput(" failed\n")
Machine.exit(failed == 0 ? 0 : 1)

#else
print("testkernel: this target boots under QEMU; run `make test`")
#endif
