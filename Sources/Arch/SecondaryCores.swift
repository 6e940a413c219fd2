// Bringing up the other cores: each is numbered (the boot core 0, the others in /cpus
// order), gets a kernel stack (with a canary at its low end) and an exception stack
// from the page frames, is started as the architecture says (AArch64: PSCI CPU_ON, a
// spin table, or boot.S's holding pen; RISC-V: SBI HSM hart_start), takes boot.S's
// path to the kernel's privilege level with the boot core's translation tables, prints
// "cpu N online" and runs the entry it was given. The C half is ArchSupport's cores.c
// and <arch>/smp.c.
#if os(none)
import ArchSupport
import FlattenedDeviceTree
import KernelPlatform
import VirtualMemory

private let stateOff = UInt32(ARCH_CPU_OFF)
private let stateReleased = UInt32(ARCH_CPU_RELEASED)
private let stateArriving = UInt32(ARCH_CPU_ARRIVING)
private let stateOnline = UInt32(ARCH_CPU_ONLINE)
private let stateAbandoned = UInt32(ARCH_CPU_ABANDONED)

extension BareMetalPlatform {
  /// How long the boot core waits for the started cores to come online, in milliseconds:
  /// 5 s, as Linux waits for a started CPU. Under QEMU with many more vCPUs than host
  /// cores (64 harts on two), a core can take more than a second to arrive.
  public static var coreOnlineTimeLimitMilliseconds: UInt64 { 5000 }

  /// Starts the other cores `coresToStart` names, waits until each is online or the
  /// time limit has passed, and returns how many cores are online, the boot core
  /// included.
  ///
  /// Every core is told apart by its hardware id (AArch64: the full MPIDR affinity,
  /// Aff0-Aff3; RISC-V: the hart id), the tree's cpu `reg`. The boot core is logical
  /// cpu 0; the others get 1, 2, ... in /cpus order (`DeviceTreeCores.forEachCore`; on
  /// the Pis without a tree, the spin table's order). Those numbered `maximumCores` or
  /// more stay off and are named (by id) in one line. Each of the others is started as
  /// the architecture's `startMethod` says (AArch64: PSCI CPU_ON over /psci's conduit,
  /// the spin table at its cpu-release-addr, or boot.S's holding pen; RISC-V: SBI HSM
  /// hart_start), else reported ("cpu N: no way to start it ..."). Each started core
  /// gets a kernel stack and an exception stack from `allocateStack`, takes boot.S's
  /// path to the kernel's privilege level, installs its trap vectors and both stacks
  /// (with a canary word at the kernel stack's low end), finds its per-CPU block, turns
  /// the MMU on with the boot core's tables, prints `cpu N online (core, entered at
  /// level)` under the console lock, then runs `entry` (nil: nothing) and parks. A core
  /// that is not online within `coreOnlineTimeLimitMilliseconds` is reported ("cpu N
  /// did not come online", with what the firmware says of it where it can be asked) and
  /// not waited for; should it arrive later, it parks without running `entry`. Its
  /// stacks stay allocated.
  ///
  /// Preconditions: called once, by the boot core, after `arch_mmu_enable` (boot.S) and
  /// with `allocateStack` able to allocate (after memInit); the tree `described` reads
  /// is still where it was.
  /// - Parameters:
  ///   - described: the device tree's cores, or nil without a readable tree.
  ///   - entry: what each started core runs once online; nil parks it at once.
  ///   - stackBytes: the kernel stack's size, a multiple of 16 (at least 64).
  ///   - exceptionStackBytes: the exception stack's, the same way.
  ///   - allocateStack: a kernel stack (`exception` false: `stackBytes`) or an exception
  ///     stack (`exceptionStackBytes`), 16-byte aligned, for core `cpu`, or nil.
  ///   - freeStack: gives back a stack whose core could not be started.
  /// - Returns: the cores online, 1 ... `maximumCores`.
  /// - Complexity: O(nodes² × tree size) for the numbering, plus the wait, at most the
  ///   time limit.
  public func startSecondaryCores(
    described: DeviceTreeCores?, entry: SecondaryEntry?, stackBytes: Int, exceptionStackBytes: Int,
    allocateStack: (_ cpu: Int, _ exception: Bool) -> UnsafeMutableRawPointer?,
    freeStack: (_ cpu: Int, _ stack: UnsafeMutableRawPointer, _ exception: Bool) -> Void
  ) -> Int {
    guard let cores = coresToStart(described), let boot = arch_cpu_block(0) else { return onlineCores }
    let bootMPIDR = boot.pointee.mpidr
    let penWaiting = arch_cores_waiting_at_entry() != 0
    var started: UInt = 0
    var pastMaximum = 0
    cores.forEachCore(bootMPIDR: bootMPIDR) { cpu, core in
      guard cpu != 0 else { return }
      guard cpu < maximumCores else {
        pastMaximum += 1
        return
      }
      let method: Int32
      let releaseAddress: UInt64
      switch startMethod(of: core, in: cores, coresWaitAtEntry: penWaiting) {
      case .start(let how, let address):
        method = how
        releaseAddress = address
      case .refused(let reason, let value):
        reportCore(cpu, reason, Int(bitPattern: UInt(truncatingIfNeeded: value)), hex: true)
        return
      }
      guard let stack = allocateStack(cpu, false) else {
        reportCore(cpu, "no memory for its kernel stack (bytes)", stackBytes)
        return
      }
      guard let exceptionStack = allocateStack(cpu, true) else {
        reportCore(cpu, "no memory for its exception stack (bytes)", exceptionStackBytes)
        freeStack(cpu, stack, false)
        return
      }
      guard arch_cpu_prepare(UInt(cpu), core.mpidr, UInt(bitPattern: stack), stackBytes,
                             UInt(bitPattern: exceptionStack), exceptionStackBytes, entry) == 0 else {
        reportCore(cpu, "its stacks, block or MPIDR refused (MPIDR)", Int(bitPattern: UInt(core.mpidr)), hex: true)
        freeStack(cpu, exceptionStack, true)
        freeStack(cpu, stack, false)
        return
      }
      let status = arch_cpu_start(UInt(cpu), method, releaseAddress)
      guard status == 0 else {
        _ = arch_cpu_transition(UInt(cpu), stateReleased, stateOff)
        reportCore(cpu, method == ARCH_START_SPIN_TABLE ? "bad cpu-release-addr" : "the firmware refused to start it (status)",
                   method == ARCH_START_SPIN_TABLE ? Int(bitPattern: UInt(releaseAddress)) : status,
                   hex: method == ARCH_START_SPIN_TABLE)
        freeStack(cpu, exceptionStack, true)
        freeStack(cpu, stack, false)
        return
      }
      started |= 1 << UInt(cpu)
    }
    if pastMaximum > 0 { reportPastMaximum(cores, bootMPIDR: bootMPIDR, count: pastMaximum) }
    waitOnline(started)
    return onlineCores
  }

  /// One line naming the cores numbered `maximumCores` or more, by MPIDR.
  private func reportPastMaximum(_ cores: DeviceTreeCores, bootMPIDR: UInt64, count: Int) {
    withConsoleLock {
      kput("startSecondaryCores: ")
      kputDecimal(UInt(count))
      kput(" cores listed past the maximum of ")
      kputDecimal(UInt(maximumCores))
      kput(" stay off: MPIDR")
      cores.forEachCore(bootMPIDR: bootMPIDR) { cpu, core in
        guard cpu >= maximumCores else { return }
        kput(" ")
        kputHex(UInt(core.mpidr))
      }
      kput("\n")
    }
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
            kput(" ms")
            let state = arch_cpu_firmware_state(UInt(cpu))
            if state.pointee != 0 {
              kput("; the firmware says: ")
              var cursor = state
              while cursor.pointee != 0 {
                write(UInt8(bitPattern: cursor.pointee))
                cursor += 1
              }
            }
            kput(")\n")
          }
        }
      }
      arch_cpu_relax()
    }
  }

  /// One report line: `startSecondaryCores: cpu N: <reason> <value>`, the value in
  /// decimal (in hex when `hex` or above 0xFFFF: an address).
  private func reportCore(_ cpu: Int, _ reason: StaticString, _ value: Int, hex: Bool = false) {
    withConsoleLock {
      kput("startSecondaryCores: cpu ")
      kputDecimal(UInt(cpu))
      kput(": ")
      kput(reason)
      kput(" ")
      if hex || value > 0xFFFF { kputHex(UInt(bitPattern: value)) } else { kputDecimal(signed: value) }
      kput("\n")
    }
  }
}

/// A started core, from boot.S at EL1 with its stacks, block and MMU set up: claims
/// its start (an abandoned core returns at once and parks), prints `cpu N online`, is
/// online, then runs its entry. boot.S parks the core when this returns.
///
/// Preconditions: called by boot.S only, on core `cpu`, with the per-CPU register at its block.
/// - Complexity: O(1) plus the wait for the console lock plus the entry.
@_cdecl("arch_secondary_main")
public func secondaryMain(_ cpu: Int) {
  let index = UInt(cpu)
  guard let block = arch_cpu_block(index), arch_cpu_transition(index, stateReleased, stateArriving) != 0 else { return }
  let board = BoardPlatform()
  let enteredAt = board.privilegeName(UInt(block.pointee.entry_el))
  let name = board.coreName(block.pointee)
  withConsoleLock {
    kput("cpu ")
    kputDecimal(index)
    kput(" online (")
    kput(name)
    kput(", entered at ")
    kput(enteredAt)
    kput(")\n")
  }
  _ = arch_cpu_transition(index, stateArriving, stateOnline)
  if let entry = block.pointee.entry { entry(cpu) }
}

#endif
