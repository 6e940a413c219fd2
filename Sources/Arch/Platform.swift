// The one small interface the rest of the kernel uses to learn about the machine.
#if arch(arm64) && os(none)
import ArchSupport

/// Physical memory as the firmware or QEMU describes it.
public struct DiscoveredMemory {
  /// First byte of RAM.
  public var ramBase: UInt
  /// Bytes of RAM usable by the kernel.
  public var ramSize: UInt
  /// The device tree blob's range inside RAM, or an empty range at 0.
  public var dtbStart: UInt
  public var dtbEnd: UInt
}

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

  /// Asks the board how much RAM there is: the mailbox on raspi3b, the device tree on virt.
  /// Returns nil if the firmware does not answer.
  public static func discoverMemory() -> DiscoveredMemory? {
    #if BOARD_VIRT
    // QEMU places the DTB at the RAM base for ELF kernels; a loader may also pass it in x0.
    let candidates: (UInt, UInt) = (UInt(arch_boot_x0), 0x4000_0000)
    guard let tree = DeviceTree(at: candidates.0) ?? DeviceTree(at: candidates.1),
      let range = tree.firstMemoryRange()
    else { return nil }
    return DiscoveredMemory(
      ramBase: range.base, ramSize: range.size,
      dtbStart: tree.base, dtbEnd: tree.base + tree.totalSize)
    #else
    guard let range = Mailbox.armMemory() else { return nil }
    return DiscoveredMemory(ramBase: range.base, ramSize: range.size, dtbStart: 0, dtbEnd: 0)
    #endif
  }
}

#endif
