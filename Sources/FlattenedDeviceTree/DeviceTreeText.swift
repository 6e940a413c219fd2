// Node names, property names and property values: slices of a checked blob, with the
// comparisons and reads that readers need, each bounds-checked on its own.

/// A node or property name without its NUL.
public struct DeviceTreeText {
  /// The name's bytes.
  public let bytes: UnsafeRawBufferPointer

  init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

  /// The name's length in bytes.
  public var count: Int { bytes.count }

  /// Whether the name is exactly `text`.
  /// - Complexity: O(length of `text`).
  public func equals(_ text: StaticString) -> Bool {
    bytes.count == text.utf8CodeUnitCount && hasPrefix(text)
  }

  /// Whether the node name is `base@unit-address`, with a unit address of one byte or more.
  /// - Complexity: O(length of `base`).
  public func hasUnitAddress(_ base: StaticString) -> Bool {
    let count = base.utf8CodeUnitCount
    return bytes.count > count + 1 && bytes[count] == DeviceTreeText.unitAddressSeparator && hasPrefix(base)
  }

  /// Whether the node name is `base` or `base@unit-address`.
  /// - Complexity: O(length of `base`).
  public func isNode(_ base: StaticString) -> Bool {
    equals(base) || hasUnitAddress(base)
  }

  static let unitAddressSeparator: UInt8 = 0x40  // "@"

  /// Whether the bytes start with `text` (which must not be longer than them).
  private func hasPrefix(_ text: StaticString) -> Bool {
    let count = text.utf8CodeUnitCount
    guard count <= bytes.count else { return false }
    for index in 0..<count where bytes[index] != text.utf8Start[index] { return false }
    return true
  }
}

/// A property: its name and its value's bytes.
public struct DeviceTreeProperty {
  /// The property's name, from the strings block.
  public let name: DeviceTreeText
  /// The value's bytes (big-endian cells, strings with their NUL, or nothing).
  public let value: UnsafeRawBufferPointer

  /// The value as one 32-bit cell, or nil when it is not exactly 4 bytes.
  /// - Complexity: O(1).
  public var cell: UInt32? {
    value.count == 4 ? FlattenedDeviceTree.word(value, 0) : nil
  }

  /// The value as one number of 4 or 8 bytes (one or two cells), or nil for another length.
  /// - Complexity: O(1).
  public var number: UInt64? {
    value.count == 4 || value.count == 8 ? cells(at: 0, count: value.count / 4) : nil
  }

  /// `count` cells (1 or 2) from byte `offset` as one number, high cell first; nil when
  /// they do not lie inside the value or `count` is not 1 or 2.
  /// - Complexity: O(1).
  public func cells(at offset: Int, count: Int) -> UInt64? {
    guard count == 1 || count == 2, offset >= 0, offset <= value.count - 4 * count else { return nil }
    var number: UInt64 = 0
    for index in 0..<count { number = number << 32 | UInt64(FlattenedDeviceTree.word(value, offset + 4 * index)) }
    return number
  }

  /// Whether the value is the string `text` and its NUL.
  /// - Complexity: O(length of `text`).
  public func isString(_ text: StaticString) -> Bool {
    let count = text.utf8CodeUnitCount
    guard value.count == count + 1, value[count] == 0 else { return false }
    for index in 0..<count where value[index] != text.utf8Start[index] { return false }
    return true
  }
}
