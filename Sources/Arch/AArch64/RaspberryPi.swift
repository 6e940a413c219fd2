// What the Raspberry Pi 3 and 4 share: the VideoCore mailbox for RAM and the board's
// model, the PL011 set up on GPIO 14/15 from the firmware's clock, and cores 1-3
// released from the spin table (the tree's /cpus when it has any, else the table at
// 0xd8).
#if arch(arm64) && os(none) && !BOARD_VIRT
import ArchSupport
import FlattenedDeviceTree
import KernelPlatform

/// A Raspberry Pi board (Raspi3B, Raspi4B).
public protocol RaspberryPi: AArch64Platform {}

extension RaspberryPi {
  /// "raspi3b" or "raspi4b".
  public var boardName: StaticString { Board.name }

  /// The ARM's memory from the VideoCore mailbox, or nil.
  /// - Complexity: O(1) plus the mailbox's answer.
  public func mailboxMemory() -> (base: UInt, size: UInt)? { Mailbox.armMemory() }

  /// The UART at 115200 8N1 on GPIO 14/15, clocked as the firmware says.
  /// Preconditions: called before the first output.
  /// - Complexity: O(1) plus the mailbox's answer and the UART's draining.
  public func setUpConsole() { Uart.setUp() }

  /// The board revision's memory size: the Pis' RAM starts at 0 and ends below it.
  /// - Complexity: O(1) plus the mailbox's answer.
  public func boardRAMEnd() -> UInt? { boardModel()?.memoryBytes }

  /// The board's four cores, released from the spin table.
  public var coresWithoutTree: Int { Int(ARCH_SPIN_TABLE_CORES) }

  /// The tree's cores when it lists any (the firmware's trees: spin-table with
  /// cpu-release-addr 0xd8 + 8 × n); otherwise the board's four, MPIDR 0-3, released from
  /// the spin table at 0xd8 + 8 × n (the firmware's armstub and boot.S both wait there).
  /// - Complexity: O(1).
  public func coresToStart(_ described: DeviceTreeCores?) -> DeviceTreeCores? {
    if let described, described.cpuNodes > 0 { return described }
    return DeviceTreeCores(psci: nil, cpuNodes: Int(ARCH_SPIN_TABLE_CORES),
                           releaseAddresses: (UInt64(ARCH_SPIN_TABLE_BASE), UInt64(ARCH_SPIN_TABLE_STRIDE)))
  }

  /// The board's model from the firmware's revision code, or nil for an old-style code
  /// or without an answer.
  /// - Complexity: O(1) plus the mailbox's answer.
  public func boardModel() -> BoardModel? {
    guard let revision = Mailbox.boardRevision(), revision & (1 << 23) != 0 else { return nil }
    let name: StaticString
    switch (revision >> 4) & 0xFF {
    case 0x04: name = "Raspberry Pi 2 Model B"
    case 0x08: name = "Raspberry Pi 3 Model B"
    case 0x0A: name = "Raspberry Pi Compute Module 3"
    case 0x0D: name = "Raspberry Pi 3 Model B+"
    case 0x0E: name = "Raspberry Pi 3 Model A+"
    case 0x10: name = "Raspberry Pi Compute Module 3+"
    case 0x11: name = "Raspberry Pi 4 Model B"
    case 0x12: name = "Raspberry Pi Zero 2 W"
    case 0x13: name = "Raspberry Pi 400"
    case 0x14: name = "Raspberry Pi Compute Module 4"
    default: name = "Raspberry Pi (unknown type)"
    }
    return BoardModel(name: name, memoryBytes: UInt(256 << 20) << UInt((revision >> 20) & 7), revision: revision)
  }
}

#if BOARD_RASPI4B
/// Raspberry Pi 4 Model B (Cortex-A72): RAM above 1 GiB comes from the board revision.
public struct Raspi4B: RaspberryPi {
  /// A handle on the board; it holds nothing.
  public init() {}

  /// [0x40000000, min(total, the mapped limit)) when the revision gives 2 GiB or more.
  /// - Complexity: O(1) plus the mailbox's answer.
  public func boardRevisionHighMemory() -> (base: UInt, size: UInt)? {
    guard let total = Mailbox.boardMemoryBytes(), total > Board.highRAMBase else { return nil }
    return (Board.highRAMBase, min(total, Board.mappedLimit) - Board.highRAMBase)
  }
}
#else
/// Raspberry Pi 3 Model B (Cortex-A53): the mailbox gives all the RAM the ARM has.
public struct Raspi3B: RaspberryPi {
  /// A handle on the board; it holds nothing.
  public init() {}

  /// Nil: the mailbox gives all of it.
  /// - Complexity: O(1).
  public func boardRevisionHighMemory() -> (base: UInt, size: UInt)? { nil }
}
#endif
#endif
