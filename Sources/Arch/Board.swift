// The board this image was built for: chosen at build time by the toolset
// (qemu/raspi3b.json defines BOARD_RASPI3B, qemu/virt.json defines BOARD_VIRT).
#if arch(arm64) && os(none)

/// Fixed facts about the board. Everything here is a physical address.
public enum Board {
  #if BOARD_VIRT
  /// Name printed in the boot banner.
  public static let name: StaticString = "virt"
  /// PL011 UART data register block.
  static let uartBase: UInt = 0x0900_0000
  #else
  public static let name: StaticString = "raspi3b"
  static let uartBase: UInt = 0x3F20_1000
  /// VideoCore mailbox 0.
  static let mailboxBase: UInt = 0x3F00_B880
  #endif
}

#endif
