// Raspberry Pi VideoCore mailbox: the property interface's "get ARM memory" and "get board revision" tags.
#if arch(arm64) && os(none) && !BOARD_VIRT
import ArchSupport

private let mailboxRead: UInt = 0x00
private let mailboxStatus: UInt = 0x18
private let mailboxWrite: UInt = 0x20
private let statusFull: UInt32 = 0x8000_0000
private let statusEmpty: UInt32 = 0x4000_0000
private let propertyChannel: UInt32 = 8
private let tagGetArmMemory: UInt32 = 0x0001_0005
private let tagGetBoardRevision: UInt32 = 0x0001_0002
private let tagGetClockRate: UInt32 = 0x0003_0002
private let clockUART: UInt32 = 2
private let codeRequest: UInt32 = 0
private let codeResponseOK: UInt32 = 0x8000_0000

/// The request buffer: 16-byte aligned because the low 4 bits of its address carry the channel.
private struct PropertyMessage {
  var words: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
    (0, 0, 0, 0, 0, 0, 0, 0)
}

// Static storage in .bss, in RAM the VideoCore can read: the stack would do as well,
// but a fixed buffer keeps the address obviously stable. Swift aligns it to 8 bytes at
// most, so it holds 16 bytes more than a message and the message starts at its first
// 16-byte boundary.
nonisolated(unsafe) private var messageStorage: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)

enum Mailbox {
  /// Asks the firmware for the ARM's share of RAM. Returns (base, size) or nil.
  static func armMemory() -> (base: UInt, size: UInt)? {
    guard let words = query(tagGetArmMemory), words.0 != 0 || words.1 != 0 else { return nil }
    return (UInt(words.0), UInt(words.1))
  }

  /// The board's total RAM from its revision code (new-style codes: bits 20-22 give
  /// 256 MiB << n), or nil for an old-style code or no answer.
  static func boardMemoryBytes() -> UInt? {
    guard let revision = boardRevision(), revision & (1 << 23) != 0 else { return nil }
    return UInt(256 << 20) << UInt((revision >> 20) & 7)
  }

  /// The UART's reference clock in Hz (the firmware's clock-rate tag), or nil.
  static func uartClockHz() -> UInt32? {
    guard let words = query(tagGetClockRate, argument: clockUART), words.0 == clockUART, words.1 != 0 else { return nil }
    return words.1
  }

  /// The firmware's board revision code, or nil.
  static func boardRevision() -> UInt32? {
    query(tagGetBoardRevision)?.0
  }

  /// One property-tag request with an 8-byte value; the two response words, or nil.
  private static func query(_ tag: UInt32, argument: UInt32 = 0) -> (UInt32, UInt32)? {
    return withUnsafeMutablePointer(to: &messageStorage) { storage -> (UInt32, UInt32)? in
      let address = (UInt(bitPattern: storage) + 15) & ~UInt(15)
      let pointer = UnsafeMutableRawPointer(bitPattern: address).unsafelyUnwrapped
        .bindMemory(to: PropertyMessage.self, capacity: 1)
      pointer.pointee.words = (32, codeRequest, tag, 8, 0, argument, 0, 0)
      // The buffer is in cacheable memory and the VideoCore reads RAM: clean it to RAM
      // before the request, invalidate it after the answer (no-ops under QEMU, which
      // models no caches; needed on hardware).
      arch_cache_clean(pointer, MemoryLayout<PropertyMessage>.size)
      while arch_mmio_read32(Board.mailboxBase + mailboxStatus) & statusFull != 0 {}
      arch_mmio_write32(Board.mailboxBase + mailboxWrite, UInt32(truncatingIfNeeded: address) | propertyChannel)
      while true {
        while arch_mmio_read32(Board.mailboxBase + mailboxStatus) & statusEmpty != 0 {}
        let reply = arch_mmio_read32(Board.mailboxBase + mailboxRead)
        if reply & 0xF == propertyChannel { break }
      }
      arch_cache_invalidate(pointer, MemoryLayout<PropertyMessage>.size)
      let words = pointer.pointee.words
      guard words.1 == codeResponseOK else { return nil }
      return (words.5, words.6)
    }
  }
}

#endif
