// PL011 UART: output, and the set-up the hardware needs on every board (enabled,
// 8N1, the baud rate; on the Pis also the GPIO pins).
#if arch(arm64) && os(none)
import ArchSupport

private let pl011Data: UInt = 0x00
private let pl011Flags: UInt = 0x18
private let pl011IntegerBaud: UInt = 0x24
private let pl011FractionalBaud: UInt = 0x28
private let pl011LineControl: UInt = 0x2C
private let pl011Control: UInt = 0x30
private let pl011InterruptClear: UInt = 0x44
private let pl011FlagTransmitFull: UInt32 = 1 << 5
private let pl011FlagBusy: UInt32 = 1 << 3
/// 8 data bits, no parity, one stop bit, FIFOs on.
private let pl011Line8N1Fifo: UInt32 = 0b11 << 5 | 1 << 4
/// UART, transmitter and receiver enabled.
private let pl011Enable: UInt32 = 1 << 0 | 1 << 8 | 1 << 9

/// Writes one byte, waiting while the transmit FIFO is full.
@_cdecl("arch_uart_putc")
public func uartPut(_ byte: UInt8) {
  while arch_mmio_read32(Board.uartBase + pl011Flags) & pl011FlagTransmitFull != 0 {}
  arch_mmio_write32(Board.uartBase + pl011Data, UInt32(byte))
}

/// QEMU virt's PL011 reference clock (the tree's `apb-pclk`, 24 MHz).
private let virtUartClockHz: UInt32 = 24_000_000
/// Every interrupt of the PL011 (UARTICR's eleven bits).
private let pl011AllInterrupts: UInt32 = 0x7FF
/// The baud rate divisor's fraction: 64ths.
private let pl011FractionBits: UInt64 = 6

enum Uart {
  /// The serial console, enabled as the hardware needs: UARTEN, TXE and RXE, 8N1 with
  /// FIFOs, at `baud` (115200) from the UART's reference clock (virt: 24 MHz; the Pis:
  /// the firmware's clock-rate tag, on GPIO 14/15 (ALT0)). Without a clock the divisor
  /// is left as firmware set it; the UART is enabled either way (QEMU reports every
  /// byte written to a disabled UART under `-d guest_errors`).
  static func setUp(baud: UInt32 = 115_200) {
    #if BOARD_VIRT
    let clock: UInt32? = virtUartClockHz
    #else
    let clock = Mailbox.uartClockHz()
    #endif
    // Let what is queued go out, then disable while reconfiguring.
    while arch_mmio_read32(Board.uartBase + pl011Flags) & pl011FlagBusy != 0 {}
    arch_mmio_write32(Board.uartBase + pl011Control, 0)
    #if !BOARD_VIRT
    Gpio.selectAlternateFunction0(pins: 14, 15)
    #endif
    arch_mmio_write32(Board.uartBase + pl011InterruptClear, pl011AllInterrupts)
    if let clock, clock >= 16 * baud {
      // Divisor in 64ths: clock / (16 * baud) = integer + fraction / 64.
      let divisor = (UInt64(clock) * 4 + UInt64(baud) / 2) / UInt64(baud)
      arch_mmio_write32(Board.uartBase + pl011IntegerBaud, UInt32(divisor >> pl011FractionBits))
      arch_mmio_write32(Board.uartBase + pl011FractionalBaud, UInt32(divisor & ((1 << pl011FractionBits) - 1)))
    }
    // The line control write latches the divisor.
    arch_mmio_write32(Board.uartBase + pl011LineControl, pl011Line8N1Fifo)
    arch_mmio_write32(Board.uartBase + pl011Control, pl011Enable)
  }
}

#if !BOARD_VIRT
/// The GPIO block's function select and pull controls (BCM2835/2837 and BCM2711).
enum Gpio {
  static var base: UInt { Board.uartBase - 0x1000 }  // 0x3F200000 / 0xFE200000

  /// Pins to alternate function 0 (the PL011's TXD0/RXD0 for 14 and 15), pulls off.
  static func selectAlternateFunction0(pins: UInt...) {
    for pin in pins {
      let register = base + (pin / 10) * 4
      let shift = UInt32((pin % 10) * 3)
      let value = arch_mmio_read32(register) & ~(7 << shift) | (4 << shift)
      arch_mmio_write32(register, value)
    }
    #if BOARD_RASPI4B
    // BCM2711: two bits per pin in GPIO_PUP_PDN_CNTRL_REG0 (pins 0-15), 0 = no pull.
    for pin in pins {
      let register = base + 0xE4
      let shift = UInt32(pin * 2)
      arch_mmio_write32(register, arch_mmio_read32(register) & ~(3 << shift))
    }
    #else
    // BCM2837: GPPUD = off, wait, clock it into the pins, wait, release.
    arch_mmio_write32(base + 0x94, 0)
    spin(150)
    var mask: UInt32 = 0
    for pin in pins { mask |= 1 << UInt32(pin) }
    arch_mmio_write32(base + 0x98, mask)
    spin(150)
    arch_mmio_write32(base + 0x98, 0)
    #endif
  }

  /// About `cycles` cycles of delay, as the BCM2837 pull sequence asks.
  private static func spin(_ cycles: Int) {
    for _ in 0..<cycles { arch_dsb() }
  }
}
#endif

#endif
