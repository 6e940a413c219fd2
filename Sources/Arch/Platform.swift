// The one small interface the rest of the kernel uses to learn about the machine.
#if arch(arm64) && os(none)
import ArchSupport

/// The kernel image as the linker laid it out.
public struct KernelImage {
  /// `__kernel_start`: the first byte of the image (0x200000 on raspi3b).
  public let start: UInt
  /// `__end`: one past the last byte, page aligned.
  public let end: UInt
  public let bssStart: UInt
  public let bssEnd: UInt
  public let stackBottom: UInt
  public let stackTop: UInt
}

public enum Platform {
  /// Where the linker put the kernel.
  public static var kernelImage: KernelImage {
    KernelImage(
      start: arch_kernel_start(), end: arch_kernel_end(),
      bssStart: arch_bss_start(), bssEnd: arch_bss_end(),
      stackBottom: arch_stack_bottom(), stackTop: arch_stack_top())
  }

  /// The exception level boot.S was entered at (3, 2 or 1).
  public static var entryExceptionLevel: UInt { UInt(arch_boot_el) }

  /// The exception level the kernel runs at now (1).
  public static var currentExceptionLevel: UInt { UInt(arch_current_el()) }

  /// The assembly bzero, as a C function pointer for portable code.
  public static let zeroFill: @convention(c) (UnsafeMutableRawPointer?, Int) -> Void = { pointer, count in
    bzero(pointer, count)
  }

  /// The device tree blob a loader passed in x0, else the one QEMU places at the board's
  /// default address: its address and its header's total size. Only addresses inside
  /// the board's RAM window are read, and only a header with the FDT magic counts.
  public static func deviceTreeLocation() -> (address: UInt, size: Int)? {
    for candidate in [UInt(arch_boot_x0), Board.defaultDeviceTree] {
      guard candidate & 7 == 0, candidate >= Board.ramWindow.start, candidate < Board.ramWindow.end - 8,
        let header = UnsafePointer<UInt32>(bitPattern: candidate),
        UInt32(bigEndian: header.pointee) == 0xD00D_FEED
      else { continue }
      let size = Int(UInt32(bigEndian: header[1]))
      // A tree bigger than 2 MiB or past the window is not believed.
      guard size >= 40, size <= 2 << 20, candidate + UInt(size) <= Board.ramWindow.end else { continue }
      return (candidate, size)
    }
    return nil
  }

  /// The ARM's memory from the VideoCore mailbox (Raspberry Pi), or nil.
  public static func mailboxMemory() -> (base: UInt, size: UInt)? {
    #if BOARD_VIRT
    return nil
    #else
    return Mailbox.armMemory()
    #endif
  }

  /// RAM above 1 GiB that only the board revision describes (Raspberry Pi 4 with 2 GiB
  /// or more): [0x40000000, min(total, the mapped limit)), or nil.
  public static func boardRevisionHighMemory() -> (base: UInt, size: UInt)? {
    #if BOARD_RASPI4B
    guard let total = Mailbox.boardMemoryBytes(), total > Board.highRAMBase else { return nil }
    return (Board.highRAMBase, min(total, Board.mappedLimit) - Board.highRAMBase)
    #else
    return nil
    #endif
  }

  /// Sets the serial console up as hardware needs it (Raspberry Pi: GPIO 14/15, the
  /// UART clock from the firmware, 115200 8N1, FIFOs). Call before the first output.
  public static func setUpConsole() {
    Uart.setUp()
  }

  /// The board's model from the firmware's revision code: (name, RAM, code), or nil on
  /// virt, for an old-style code or without an answer.
  public static func boardModel() -> (name: StaticString, memoryBytes: UInt, revision: UInt32)? {
    #if BOARD_VIRT
    return nil
    #else
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
    return (name, UInt(256 << 20) << UInt((revision >> 20) & 7), revision)
    #endif
  }

  /// RAM at or above this address is not in the early identity map.
  public static var mappedLimit: UInt { Board.mappedLimit }
}

#endif
