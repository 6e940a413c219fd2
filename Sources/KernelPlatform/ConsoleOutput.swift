// Allocation-free output for the kernel, usable before the heap exists and while
// panicking: strings and numbers written a byte at a time to whatever sink the
// conforming type has (a UART, a test's buffer).

/// A byte sink with the kernel's printing functions on top.
public protocol ConsoleOutput {
  /// Writes one byte; `\n` is the sink's to translate (the UART sends CR LF).
  func write(_ byte: UInt8)
}

extension ConsoleOutput {
  /// Writes a static string.
  /// - Complexity: O(length).
  public func kput(_ text: StaticString) {
    text.withUTF8Buffer { bytes in
      for byte in bytes { write(byte) }
    }
  }

  /// Writes the bytes of a buffer as text.
  /// - Complexity: O(count).
  public func kput(bytes: UnsafeBufferPointer<UInt8>) {
    for byte in bytes { write(byte) }
  }

  /// Writes `value` as `0x` followed by at least `digits` hex digits (1 ... 16).
  /// - Complexity: O(1): at most 18 bytes.
  public func kputHex(_ value: UInt, digits: Int = 1) {
    write(48)  // "0"
    write(120)  // "x"
    var shift = 60
    var started = false
    while shift >= 0 {
      let nibble = UInt8((value >> UInt(shift)) & 0xF)
      if nibble != 0 || started || shift < digits * 4 || shift == 0 {
        started = true
        write(nibble < 10 ? 48 + nibble : 87 + nibble)
      }
      shift -= 4
    }
  }

  /// Writes `value` in decimal.
  /// - Complexity: O(1): at most 20 digits.
  public func kputDecimal(_ value: UInt) {
    // The largest power of ten a UInt holds, then down, skipping leading zeros.
    var divisor: UInt = 10_000_000_000_000_000_000
    while divisor > 1 && value / divisor == 0 { divisor /= 10 }
    while divisor > 0 {
      write(UInt8(48 + (value / divisor) % 10))
      divisor /= 10
    }
  }

  /// Writes a signed value in decimal.
  /// - Complexity: O(1).
  public func kputDecimal(signed value: Int) {
    if value < 0 { write(45) }  // "-"
    kputDecimal(value.magnitude)
  }
}
