// QEMU's virt machine: RAM and cores only from the device tree, cores started with
// PSCI CPU_ON over the conduit /psci names, nothing to set up for the PL011.
#if arch(arm64) && os(none) && BOARD_VIRT
import ArchSupport
import FlattenedDeviceTree
import KernelPlatform

/// QEMU's virt machine (Cortex-A53, four cores).
public struct Virt: AArch64Platform {
  /// A handle on the board; it holds nothing.
  public init() {}

  /// "virt".
  public var boardName: StaticString { Board.name }
  /// Nil: no firmware to ask.
  /// - Complexity: O(1).
  public func boardModel() -> BoardModel? { nil }
  /// Nothing: QEMU's PL011 needs no set-up.
  /// - Complexity: O(1).
  public func setUpConsole() {}
  /// Nil: no mailbox; the device tree lists all RAM.
  /// - Complexity: O(1).
  public func mailboxMemory() -> (base: UInt, size: UInt)? { nil }
  /// Nil: no board revision.
  /// - Complexity: O(1).
  public func boardRevisionHighMemory() -> (base: UInt, size: UInt)? { nil }

  /// PSCI over the tree's conduit, for the tree's cpu nodes (at most `maximumCores`);
  /// without a readable tree or a /psci method the other cores stay off (reported).
  /// - Complexity: O(1).
  public func coreStartPlan(_ described: DeviceTreeCores?) -> (method: Int32, cores: Int)? {
    guard let described else {
      withConsoleLock { kput("startSecondaryCores: no readable device tree: the other cores stay off\n") }
      return nil
    }
    guard let conduit = described.psci else {
      withConsoleLock { kput("startSecondaryCores: no /psci node with method hvc or smc: the other cores stay off\n") }
      return nil
    }
    return (conduit == .hvc ? ARCH_START_PSCI_HVC : ARCH_START_PSCI_SMC, min(described.cpuNodes, maximumCores))
  }
}
#endif
