// Allocation-free output for the kernel: usable before the heap exists and while panicking.
#if arch(arm64) && os(none)
import ArchSupport

/// Writes a static string; `\n` becomes CR LF.
public func kput(_ text: StaticString) {
  text.withUTF8Buffer { bytes in
    for byte in bytes { _ = putchar(Int32(byte)) }
  }
}

/// Writes the bytes of a buffer as text.
public func kput(bytes: UnsafeBufferPointer<UInt8>) {
  for byte in bytes { _ = putchar(Int32(byte)) }
}

/// Writes `value` as `0x` followed by at least `digits` hex digits.
public func kputHex(_ value: UInt, digits: Int = 1) {
  _ = putchar(48)  // "0"
  _ = putchar(120)  // "x"
  var shift = 60
  var started = false
  while shift >= 0 {
    let nibble = Int((value >> UInt(shift)) & 0xF)
    if nibble != 0 || started || shift < digits * 4 || shift == 0 {
      started = true
      _ = putchar(Int32(nibble < 10 ? 48 + nibble : 87 + nibble))
    }
    shift -= 4
  }
}

/// Writes `value` in decimal.
public func kputDecimal(_ value: UInt) {
  var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
    UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
  var count = 0
  var rest = value
  withUnsafeMutableBytes(of: &digits) { buffer in
    repeat {
      buffer[count] = UInt8(48 + rest % 10)
      rest /= 10
      count += 1
    } while rest > 0
    while count > 0 {
      count -= 1
      _ = putchar(Int32(buffer[count]))
    }
  }
}

/// Writes a signed value in decimal.
public func kputDecimal(signed value: Int) {
  if value < 0 { _ = putchar(45) }
  kputDecimal(value.magnitude)
}

#endif
