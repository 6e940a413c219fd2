// The board this image was built for: chosen at build time by the toolset
// (qemu/raspi3b.json defines BOARD_RASPI3B, qemu/raspi4b.json BOARD_RASPI4B,
// qemu/virt.json BOARD_VIRT).
#if arch(arm64) && os(none)

/// Fixed facts about the board. Everything here is a physical address.
public enum Board {
  #if BOARD_VIRT
  /// Name printed in the boot banner.
  public static let name: StaticString = "virt"
  /// PL011 UART data register block.
  static let uartBase: UInt = 0x0900_0000
  /// Where RAM can be: a device tree pointer outside this window is not read.
  static let ramWindow: (start: UInt, end: UInt) = (0x4000_0000, 0x80_0000_0000)
  /// Where QEMU puts the device tree for an ELF kernel: the RAM base.
  static let defaultDeviceTree: UInt = 0x4000_0000
  /// The first address the early identity map (mmu.c) does not map as RAM.
  static let mappedLimit: UInt = 0x80_0000_0000
  /// MMIO the kernel drives whatever the tree says: the PL011.
  static let deviceWindows: [(start: UInt, end: UInt)] = [(0x0900_0000, 0x0900_1000)]
  #elseif BOARD_RASPI4B
  public static let name: StaticString = "raspi4b"
  /// PL011 UART0 in the low-peripheral window at 0xFE000000.
  static let uartBase: UInt = 0xFE20_1000
  /// VideoCore mailbox 0.
  static let mailboxBase: UInt = 0xFE00_B880
  static let ramWindow: (start: UInt, end: UInt) = (0x1000, 0xFC00_0000)
  /// No tree unless a loader passes one in x0.
  static let defaultDeviceTree: UInt = 0
  /// RAM below the peripheral window is mapped Normal (mmu.c); RAM above 4 GiB (8 GiB
  /// boards) is not mapped yet.
  static let mappedLimit: UInt = 0xFC00_0000
  /// Where RAM above 1 GiB starts when only the board revision tells its size.
  static let highRAMBase: UInt = 0x4000_0000
  /// MMIO the kernel drives whatever the tree says: the peripherals (UART, mailbox,
  /// power management) and the ARM local peripherals, low-peripheral mode.
  static let deviceWindows: [(start: UInt, end: UInt)] = [(0xFC00_0000, 0x1_0000_0000)]
  #else
  public static let name: StaticString = "raspi3b"
  static let uartBase: UInt = 0x3F20_1000
  /// VideoCore mailbox 0.
  static let mailboxBase: UInt = 0x3F00_B880
  static let ramWindow: (start: UInt, end: UInt) = (0x1000, 0x3F00_0000)
  /// No tree unless a loader passes one in x0.
  static let defaultDeviceTree: UInt = 0
  /// RAM below the peripherals is mapped Normal (mmu.c).
  static let mappedLimit: UInt = 0x3F00_0000
  /// MMIO the kernel drives whatever the tree says: the peripherals (UART, mailbox,
  /// power management) and the ARM local peripherals.
  static let deviceWindows: [(start: UInt, end: UInt)] = [(0x3F00_0000, 0x4004_0000)]
  #endif
}

#endif
