// QEMU's virt machine: RAM and cores only from the device tree, cores started with
// PSCI CPU_ON over the conduit /psci names (or from the holding pen without firmware),
// the PL011 enabled.
#if arch(arm64) && os(none) && BOARD_VIRT
import ArchSupport
import FlattenedDeviceTree
import KernelPlatform

/// QEMU's virt machine (any number of cores; the kernel runs up to `maximumCores`).
public struct Virt: AArch64Platform {
  /// A handle on the board; it holds nothing.
  public init() {}

  /// "virt".
  public var boardName: StaticString { Board.name }
  /// Nil: no firmware to ask.
  /// - Complexity: O(1).
  public func boardModel() -> BoardModel? { nil }
  /// Enables the PL011 (8N1, FIFOs, transmit and receive) as the hardware needs.
  /// - Complexity: O(1) plus the UART's draining.
  public func setUpConsole() { Uart.setUp() }
  /// Nil: no mailbox; the device tree lists all RAM.
  /// - Complexity: O(1).
  public func mailboxMemory() -> (base: UInt, size: UInt)? { nil }
  /// Nil: no board revision.
  /// - Complexity: O(1).
  public func boardRevisionHighMemory() -> (base: UInt, size: UInt)? { nil }

  /// Nil: virt reports its RAM in the tree only.
  /// - Complexity: O(1).
  public func boardRAMEnd() -> UInt? { nil }

  /// Only the boot core: virt's other cores are known from the tree alone.
  public var coresWithoutTree: Int { 1 }

  /// The tree's cores (each started as its node and /psci say, or from the holding
  /// pen); without a readable tree the other cores stay off (reported).
  /// - Complexity: O(1).
  public func coresToStart(_ described: DeviceTreeCores?) -> DeviceTreeCores? {
    guard let described else {
      withConsoleLock { kput("startSecondaryCores: no readable device tree: the other cores stay off\n") }
      return nil
    }
    return described
  }
}
#endif
