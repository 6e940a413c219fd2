// PL011 UART output. QEMU's model needs no baud-rate set-up.
#if arch(arm64) && os(none)
import ArchSupport

private let pl011Data: UInt = 0x00
private let pl011Flags: UInt = 0x18
private let pl011FlagTransmitFull: UInt32 = 1 << 5

/// Writes one byte, waiting while the transmit FIFO is full.
@_cdecl("arch_uart_putc")
public func uartPut(_ byte: UInt8) {
  while arch_mmio_read32(Board.uartBase + pl011Flags) & pl011FlagTransmitFull != 0 {}
  arch_mmio_write32(Board.uartBase + pl011Data, UInt32(byte))
}

#endif
