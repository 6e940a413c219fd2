// The kernel command line a boot loader (or QEMU's -append) leaves in /chosen/bootargs,
// and the value of one `name=N` word of it.

extension FlattenedDeviceTree {
  /// The bytes of `/chosen`'s `bootargs` (without the NUL), or nil when the tree has none.
  /// - Throws: `DeviceTreeError` for a malformed structure block.
  /// - Complexity: O(structure block).
  public func bootArguments() throws(DeviceTreeError) -> UnsafeRawBufferPointer? {
    guard let value = try property("bootargs", ofNode: "chosen")?.value else { return nil }
    var length = value.count
    while length > 0 && value[length - 1] == 0 { length -= 1 }
    return UnsafeRawBufferPointer(rebasing: value[0..<length])
  }

  /// Property `name` of the root's child node `node` (matched by its whole name, as
  /// `chosen` or `cpus`), or nil when the tree has no such property.
  /// - Throws: `DeviceTreeError` for a malformed structure block.
  /// - Complexity: O(structure block).
  public func property(_ name: StaticString, ofNode node: StaticString) throws(DeviceTreeError) -> DeviceTreeProperty? {
    var walker = walk()
    var inNode = false
    while let token = try walker.next() {
      switch token {
      case .beginNode(let nodeName):
        if walker.depth == 2 { inNode = nodeName.equals(node) }
      case .endNode:
        if walker.depth < 2 { inNode = false }
      case .property(let property):
        if inNode, walker.depth == 2, property.name.equals(name) { return property }
      }
    }
    return nil
  }
}

/// The value of the word `name=N` (N decimal, at most 9 digits) in a space-separated
/// command line: nil when no word starts with `name=`; the last such word wins.
/// - Returns: `.some(nil)` when the word is there but N is not a decimal number.
/// - Complexity: O(line).
public func commandLineValue(_ line: UnsafeRawBufferPointer, named name: StaticString) -> Int?? {
  var found: Int?? = nil
  var cursor = 0
  let prefix = name.utf8CodeUnitCount
  while cursor < line.count {
    while cursor < line.count && (line[cursor] == 32 || line[cursor] == 9 || line[cursor] == 10) { cursor += 1 }
    let start = cursor
    while cursor < line.count && line[cursor] != 32 && line[cursor] != 9 && line[cursor] != 10 { cursor += 1 }
    guard cursor - start > prefix else { continue }
    var matches = line[start + prefix] == 61  // "="
    for index in 0..<prefix where line[start + index] != name.utf8Start[index] { matches = false }
    guard matches else { continue }
    var value = 0
    var digits = 0
    for index in (start + prefix + 1)..<cursor {
      let byte = line[index]
      guard byte >= 48 && byte <= 57, digits < 9 else {
        digits = -1
        break
      }
      value = value * 10 + Int(byte - 48)
      digits += 1
    }
    found = digits > 0 ? .some(value) : .some(nil)
  }
  return found
}
