// The virt board's NS16550A UART: output, and the set-up the hardware needs (8N1,
// FIFOs on, the divisor latch for 115200 baud from its 3.6864 MHz clock).
#if arch(riscv64) && os(none)
import ArchSupport

private let transmitHolding: UInt = 0
private let interruptEnable: UInt = 1
private let fifoControl: UInt = 2
private let lineControl: UInt = 3
private let lineStatus: UInt = 5
private let lineStatusTransmitEmpty: UInt8 = 1 << 5
/// LCR: 8 data bits, no parity, one stop bit; DLAB (bit 7) exposes the divisor latch.
private let line8N1: UInt8 = 0b11
private let divisorLatchAccess: UInt8 = 1 << 7
/// FCR: FIFOs on, both cleared.
private let fifoEnableAndClear: UInt8 = 0b111
/// The virt board's UART clock (the tree's clock-frequency, 0x384000).
private let uartClockHz: UInt32 = 3_686_400

/// Writes one byte, waiting until the transmitter has room.
@_cdecl("arch_uart_putc")
public func uartPut(_ byte: UInt8) {
  while arch_mmio_read8(Board.uartBase + lineStatus) & lineStatusTransmitEmpty == 0 {}
  arch_mmio_write8(Board.uartBase + transmitHolding, byte)
}

enum Uart16550 {
  /// 115200 8N1 with FIFOs, interrupts off (the kernel polls).
  static func setUp(baud: UInt32 = 115_200) {
    let divisor = uartClockHz / (16 * baud)
    arch_mmio_write8(Board.uartBase + interruptEnable, 0)
    arch_mmio_write8(Board.uartBase + lineControl, divisorLatchAccess)
    arch_mmio_write8(Board.uartBase + 0, UInt8(truncatingIfNeeded: divisor))
    arch_mmio_write8(Board.uartBase + 1, UInt8(truncatingIfNeeded: divisor >> 8))
    arch_mmio_write8(Board.uartBase + lineControl, line8N1)
    arch_mmio_write8(Board.uartBase + fifoControl, fifoEnableAndClear)
  }
}

#endif
