// Fixed facts about QEMU's riscv64 virt board (toolset qemu/riscv64-virt.json defines
// BOARD_RISCV64_VIRT). Everything here is a physical address.
#if arch(riscv64) && os(none)

/// Fixed facts about the board.
public enum Board {
  /// Name printed in the boot banner.
  public static let name: StaticString = "riscv64-virt"
  /// The NS16550A UART's registers (one byte apart).
  static let uartBase: UInt = 0x1000_0000
  /// Where RAM can be: a device tree pointer outside this window is not read.
  static let ramWindow: (start: UInt, end: UInt) = (0x8000_0000, 0x20_0000_0000)
  /// The first address the kernel maps as RAM: 128 GiB, where the vmalloc area of the
  /// 39-bit table format begins (RAM above it is left out, and said).
  static let mappedLimit: UInt = 0x20_0000_0000
  /// MMIO the kernel drives whatever the tree says: the UART.
  static let deviceWindows: [(start: UInt, end: UInt)] = [(0x1000_0000, 0x1000_1000)]
}

#endif
