// The kernel's printing functions as free functions, for code outside the boot flow
// (the test kernel, exception paths, the debugger's commands): each is the board's
// `ConsoleOutput` function (KernelPlatform), so the formatting lives in one place.
#if os(none)
import KernelPlatform

/// Writes a static string; `\n` becomes CR LF.
/// - Complexity: O(length).
public func kput(_ text: StaticString) { BoardPlatform().kput(text) }

/// Writes the bytes of a buffer as text.
/// - Complexity: O(count).
public func kput(bytes: UnsafeBufferPointer<UInt8>) { BoardPlatform().kput(bytes: bytes) }

/// Writes `value` as `0x` followed by at least `digits` hex digits.
/// - Complexity: O(1).
public func kputHex(_ value: UInt, digits: Int = 1) { BoardPlatform().kputHex(value, digits: digits) }

/// Writes `value` in decimal.
/// - Complexity: O(1).
public func kputDecimal(_ value: UInt) { BoardPlatform().kputDecimal(value) }

/// Writes a signed value in decimal.
/// - Complexity: O(1).
public func kputDecimal(signed value: Int) { BoardPlatform().kputDecimal(signed: value) }

#endif
