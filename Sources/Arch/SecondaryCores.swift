// Bringing up the other cores: each gets a kernel stack (with a canary at its low end)
// and its exception stack, is started (PSCI CPU_ON on virt, the spin table on the
// Pis), takes boot.S's path to EL1 with the boot core's translation tables, prints
// "cpu N online" and runs the entry it was given. The C half is ArchSupport/smp.c.
#if arch(arm64) && os(none)
import ArchSupport
import FlattenedDeviceTree
import KernelPlatform

private let stateOff = UInt32(ARCH_CPU_OFF)
private let stateReleased = UInt32(ARCH_CPU_RELEASED)
private let stateArriving = UInt32(ARCH_CPU_ARRIVING)
private let stateOnline = UInt32(ARCH_CPU_ONLINE)
private let stateAbandoned = UInt32(ARCH_CPU_ABANDONED)

/// MIDR_EL1: the primary part number field and the parts the boards use.
private let midrPartShift: UInt64 = 4
private let midrPartMask: UInt64 = 0xFFF
private let partCortexA53: UInt64 = 0xD03
private let partCortexA72: UInt64 = 0xD08

extension AArch64Platform {
  /// How long the boot core waits for a started core to come online, in milliseconds.
  public static var coreOnlineTimeLimitMilliseconds: UInt64 { 1000 }

  /// Starts the other cores `coreStartPlan` names, waits until each is online or the
  /// time limit has passed, and returns how many cores are online, the boot core
  /// included.
  ///
  /// virt starts the cores the device tree lists under /cpus (at most `maximumCores`)
  /// with PSCI CPU_ON over the conduit /psci's "method" names (target MPIDR Aff0 = the
  /// core's number); without a tree or a /psci node none is started, and that is
  /// reported. The Pis release cores 1-3 from the spin table (slots 0xe0, 0xe8, 0xf0).
  /// Each started core drops to EL1 as the boot core did, enables FP/SIMD, installs the
  /// vectors, its exception stack (SP_EL1) and the kernel stack from `allocateStack`
  /// (SP_EL0, a canary word at its low end), sets TPIDR_EL1 to its per-CPU block, turns
  /// the MMU and caches on with the boot core's tables, prints `cpu N online (core,
  /// entered at ELn)` under the console lock, then runs `entry` (nil: nothing) and parks.
  /// A core that is not online within `coreOnlineTimeLimitMilliseconds` is reported
  /// ("cpu N did not come online") and not waited for; should it arrive later, it
  /// parks without running `entry`. Its stack stays allocated.
  ///
  /// Preconditions: called once, by the boot core, after `arch_mmu_enable` (boot.S) and
  /// with `allocateStack` able to allocate (after memInit).
  /// - Parameters:
  ///   - described: the device tree's cores, or nil without a readable tree.
  ///   - entry: what each started core runs once online; nil parks it at once.
  ///   - stackBytes: each kernel stack's size, a multiple of 16 (at least 64).
  ///   - allocateStack: `stackBytes` bytes, 16-byte aligned, for core `cpu`, or nil.
  ///   - freeStack: gives back a stack whose core could not be started.
  /// - Returns: the cores online, 1 ... `maximumCores`.
  /// - Complexity: O(cores) plus the wait, at most the time limit.
  public func startSecondaryCores(
    described: DeviceTreeCores?, entry: SecondaryEntry?, stackBytes: Int,
    allocateStack: (_ cpu: Int) -> UnsafeMutableRawPointer?,
    freeStack: (_ cpu: Int, _ stack: UnsafeMutableRawPointer) -> Void
  ) -> Int {
    guard let plan = coreStartPlan(described) else { return onlineCores }
    var started: UInt = 0
    for cpu in 1..<plan.cores {
      guard let stack = allocateStack(cpu) else {
        reportCore(cpu, "no memory for its kernel stack (bytes)", stackBytes)
        continue
      }
      guard arch_cpu_prepare(UInt(cpu), UInt(bitPattern: stack), stackBytes, entry) == 0 else {
        reportCore(cpu, "its stack or block refused (stack)", Int(bitPattern: stack))
        freeStack(cpu, stack)
        continue
      }
      let status = arch_cpu_start(UInt(cpu), plan.method)
      guard status == 0 else {
        _ = arch_cpu_transition(UInt(cpu), stateReleased, stateOff)
        reportCore(cpu, "PSCI CPU_ON refused (status)", status)
        freeStack(cpu, stack)
        continue
      }
      started |= 1 << UInt(cpu)
    }
    waitOnline(started)
    return onlineCores
  }

  /// Whether core `cpu` is online (it printed its line; it runs or ran its entry).
  /// False for a number out of range.
  /// - Complexity: O(1).
  public func isCoreOnline(_ cpu: Int) -> Bool {
    cpu >= 0 && arch_cpu_state(UInt(cpu)) == stateOnline
  }

  /// Waits until every core in `started` (a bit per core) is online; after the time
  /// limit, abandons the ones that have not arrived yet (one still printing its line is
  /// waited for).
  private func waitOnline(_ started: UInt) {
    var pending = started
    let limit = Clock.frequency / 1000 * Self.coreOnlineTimeLimitMilliseconds
    let start = Clock.ticks
    while pending != 0 {
      for cpu in 1..<maximumCores where pending & (1 << UInt(cpu)) != 0 && arch_cpu_state(UInt(cpu)) == stateOnline {
        pending &= ~(1 << UInt(cpu))
      }
      if pending != 0 && Clock.ticks &- start > limit {
        for cpu in 1..<maximumCores where pending & (1 << UInt(cpu)) != 0 {
          guard arch_cpu_transition(UInt(cpu), stateReleased, stateAbandoned) != 0 else { continue }
          pending &= ~(1 << UInt(cpu))
          withConsoleLock {
            kput("cpu ")
            kputDecimal(UInt(cpu))
            kput(" did not come online (")
            kputDecimal(UInt(Self.coreOnlineTimeLimitMilliseconds))
            kput(" ms)\n")
          }
        }
      }
      arch_cpu_relax()
    }
  }

  /// One report line: `startSecondaryCores: cpu N: <reason> <value>`, the value in
  /// decimal (an address in hex).
  private func reportCore(_ cpu: Int, _ reason: StaticString, _ value: Int) {
    withConsoleLock {
      kput("startSecondaryCores: cpu ")
      kputDecimal(UInt(cpu))
      kput(": ")
      kput(reason)
      kput(" ")
      if value > 0xFFFF { kputHex(UInt(bitPattern: value)) } else { kputDecimal(signed: value) }
      kput("\n")
    }
  }
}

/// The core's name from its MIDR_EL1.
private func coreName(_ midr: UInt64) -> StaticString {
  switch (midr >> midrPartShift) & midrPartMask {
  case partCortexA53: return "Cortex-A53"
  case partCortexA72: return "Cortex-A72"
  default: return "unknown core"
  }
}

/// A started core, from boot.S at EL1 with its stacks, block and MMU set up: claims
/// its start (an abandoned core returns at once and parks), prints `cpu N online`, is
/// online, then runs its entry. boot.S parks the core when this returns.
///
/// Preconditions: called by boot.S only, on core `cpu`, with TPIDR_EL1 at its block.
/// - Complexity: O(1) plus the wait for the console lock plus the entry.
@_cdecl("arch_secondary_main")
public func secondaryMain(_ cpu: Int) {
  let index = UInt(cpu)
  guard let block = arch_cpu_block(index), arch_cpu_transition(index, stateReleased, stateArriving) != 0 else { return }
  let enteredAt = UInt(block.pointee.entry_el)
  let name = coreName(block.pointee.midr)
  withConsoleLock {
    kput("cpu ")
    kputDecimal(index)
    kput(" online (")
    kput(name)
    kput(", entered at EL")
    kputDecimal(enteredAt)
    kput(")\n")
  }
  _ = arch_cpu_transition(index, stateArriving, stateOnline)
  if let entry = block.pointee.entry { entry(cpu) }
}

#endif
