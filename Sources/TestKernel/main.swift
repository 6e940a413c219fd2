// The test kernel: boots like the kernel, then runs the shared scenarios and the
// kernel-only cases, printing one line per case and `N passed, N failed`. QEMU exits
// with 0 only if every case passed. Semihosting argument `fail-on-purpose` adds a
// failing case, to prove the harness notices; `bench` runs the guest benchmark
// (GuestBench.swift) instead of the cases; `fault=data-abort`, `fault=undefined` and
// `fault=brk` take that exception, which the vectors report (exit status 4);
// `fault=stack-canary` overwrites a core's stack canary and exits (status 5); `smp`
// runs only the SMP stress on every core (SMPCase.swift; `seed=N`, `ops=N` per core);
// `quick` skips the model's 100,000 operations.
#if arch(arm64) && os(none)
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

/// Whether the command line contains `word`.
func argumentGiven(_ word: StaticString) -> Bool {
  withUnsafeBytes(of: commandLine) { contains($0, commandLineLength, word) }
}

/// The decimal number after `key` (which includes its `=`) on the command line, or nil.
func argumentValue(_ key: StaticString) -> UInt64? {
  withUnsafeBytes(of: commandLine) { decimal(after: key, in: $0, commandLineLength) }
}

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
let smpRequested = argumentGiven("smp")
let bootLayout = bootMemory(secondaryEntry: smpRequested ? smpSecondaryEntry : nil)

if smpRequested {
  kput("test kernel: smp\n")
  let e = smpStressCase(seed: argumentValue("seed=") ?? 1, operations: Int(argumentValue("ops=") ?? UInt64(smpDefaultOperations)))
  report("kernel.smp_stress", e)
  kputDecimal(UInt(passed))
  kput(" passed, ")
  kputDecimal(UInt(failed))
  kput(" failed\n")
  Machine.exit(failed == 0 ? 0 : 1)
}

if argumentGiven("bench") {
  guestBench()
  Machine.exit(0)
}
// Deliberate faults: the exception vectors must report each and exit with status 4.
if argumentGiven("fault=data-abort") { arch_fault_data_abort() }
if argumentGiven("fault=undefined") { arch_fault_undefined() }
if argumentGiven("fault=brk") { arch_fault_brk() }
// An overwritten stack canary (the last core's, as if its stack had overflowed): the
// exit path must report it with the core's number and exit with status 5.
if argumentGiven("fault=stack-canary") {
  var victim = BoardPlatform().maximumCores - 1
  while victim > 0 && !BoardPlatform().isCoreOnline(victim) { victim -= 1 }
  arch_fault_stack_canary(UInt(victim))
  Machine.exit(0)
}
kput("test kernel\n")

/// Runs `body` over a fresh, zeroed run of `bytes` bytes of real pages, as the host
/// gives a scenario fresh zeroed memory (stale headers from an earlier scenario at the
/// same addresses would change what a bad free finds).
func withScenarioMemory(seed: UInt64, bytes: Int = ScenarioMemory.standardBytes, _ body: (ScenarioMemory) -> Void) {
  let pages = bytes >> Page.shift
  guard let run = bootFrames.allocContiguous(pages: pages, zeroed: true) else {
    Machine.panic("testkernel", "no contiguous run for a scenario", UInt(bytes))
  }
  body(ScenarioMemory(base: run, bytes: bytes, zeroFill: BoardPlatform().zeroFill, seed: seed))
  freeContiguous(run, pages: pages)
}

// 1. The shared scenarios, exactly as `swift test` runs them.
for scenario in allScenarios() {
  var e = Expectations()
  withScenarioMemory(seed: 42, bytes: scenario.memoryBytes) { scenario.run($0, &e) }
  report(scenario.name, e)
}

// 2. The model at 10 seeds x 10,000 operations = 100,000 operations; skipped with
// `quick` (the boots that vary the firmware's memory map: the model runs in a scenario
// run of its own, the same on every map, and takes most of a boot's time).
if argumentGiven("quick") {
  kput("skip model.100k_operations (quick)\n")
} else {
  var model = Expectations()
  for seed in 1...10 {
    withScenarioMemory(seed: UInt64(seed)) { runModel($0, seed: UInt64(seed), operations: modelOperationsPerSeed, &model) }
  }
  report("model.100k_operations", model)
}

// 3. Kernel-only cases.
report("kernel.bzero_vs_bytes", bzeroCase())
report("kernel.every_page_once", everyPageCase(bootLayout))
report("kernel.kmalloc_kfree", kmallocCase())
report("kernel.heap_growth_and_large", heapGrowthCase())
report("kernel.bad_input_reports", badInputCase())
report("kernel.swift_runtime_on_heap", swiftRuntimeCase())
report("kernel.cpu_numbering", cpuNumberingCase())

if argumentGiven("fail-on-purpose") {
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
