// QEMU's riscv64 virt board under an SBI firmware (OpenSBI): the kernel runs in S-mode,
// RAM, reservations (OpenSBI's own region in /reserved-memory) and harts come from the
// device tree the firmware passes in a1, harts start with SBI HSM hart_start, and the
// machine ends with semihosting or the SBI's system reset.
#if arch(riscv64) && os(none)
import ArchSupport
import FlattenedDeviceTree
import KernelPlatform
import TranslationFormats

/// QEMU's riscv64 virt machine (any number of harts; the kernel runs up to `maximumCores`).
public struct RISCVVirt: BareMetalPlatform {
  /// A handle on the board; it holds nothing.
  public init() {}

  /// "riscv64-virt".
  public var boardName: StaticString { Board.name }
  /// Nil: no firmware to ask for a model.
  /// - Complexity: O(1).
  public func boardModel() -> BoardModel? { nil }
  /// The NS16550A at 115200 8N1.
  /// - Complexity: O(1).
  public func setUpConsole() { Uart16550.setUp() }
  /// Nil: the device tree lists all RAM.
  /// - Complexity: O(1).
  public func mailboxMemory() -> (base: UInt, size: UInt)? { nil }
  /// Nil: no board revision.
  /// - Complexity: O(1).
  public func boardRevisionHighMemory() -> (base: UInt, size: UInt)? { nil }
  /// Nil: virt reports its RAM in the tree only.
  /// - Complexity: O(1).
  public func boardRAMEnd() -> UInt? { nil }
  /// True: an SBI firmware names what it keeps in /reserved-memory (OpenSBI: its own
  /// region, `no-map`), so RAM below the kernel is free unless reserved.
  public var firmwareDescribesItsMemory: Bool { true }
  /// Only the boot hart: the others are known from the tree alone.
  public var coresWithoutTree: Int { 1 }

  /// "U-mode", "S-mode", "M-mode" (level 2 is reserved).
  /// - Complexity: O(1).
  public func privilegeName(_ level: UInt) -> StaticString {
    switch level {
    case 0: return "U-mode"
    case 1: return "S-mode"
    case 3: return "M-mode"
    default: return "reserved mode"
    }
  }

  /// The tree the firmware passed in a1 (`deviceTree(at:)` says which count); sets the
  /// counter's frequency from its /cpus timebase-frequency.
  /// - Complexity: O(tree size).
  public func deviceTree() -> DeviceTreeBlob? {
    guard let blob = deviceTree(at: UInt(arch_boot_x0)) else { return nil }
    if let hz = try? FlattenedDeviceTree(blob: blob.bytes).timebaseFrequency() { arch_timebase_frequency = hz }
    return blob
  }

  /// The tree's harts; without a readable tree the others stay off (reported).
  /// - Complexity: O(1).
  public func coresToStart(_ described: DeviceTreeCores?) -> DeviceTreeCores? {
    guard let described else {
      withConsoleLock { kput("startSecondaryCores: no readable device tree: the other harts stay off\n") }
      return nil
    }
    return described
  }

  /// SBI HSM hart_start with the node's hart id (its `reg`), when the firmware has HSM.
  /// - Complexity: O(1) plus one SBI call.
  public func startMethod(of core: DeviceTreeCPU, in cores: DeviceTreeCores, coresWaitAtEntry: Bool) -> CoreStartMethod {
    guard arch_sbi_has_hsm() != 0 else {
      return .refused(reason: "no way to start it: the SBI firmware has no HSM extension; hart", value: core.mpidr)
    }
    return .start(method: ARCH_START_SBI_HSM, releaseAddress: 0)
  }

  /// Sv39 page tables (TranslationFormat+Sv39.swift).
  public var translationFormat: TranslationFormat { .sv39 }

  /// "RISC-V hart".
  /// - Complexity: O(1).
  public func coreName(_ block: arch_cpu) -> StaticString { "RISC-V hart" }
}

#endif
