// The structure block as a sequence of tokens: begin a node (with its name), end it, or
// a property (name and value). Each token is checked against its block before it is
// handed out, so readers built on the walker never see an offset they must check.

/// One structure-block token. Names and values are slices of the blob, already checked.
public enum DeviceTreeToken {
  /// A node begins; the walker's `depth` is now its depth (the root's is 1).
  case beginNode(DeviceTreeText)
  /// The node at depth `depth + 1` ends; the walker's `depth` is its parent's again.
  case endNode
  /// A property of the node at the walker's `depth`.
  case property(DeviceTreeProperty)
}

/// Walks the structure block token by token (NOPs skipped), checking every read.
public struct DeviceTreeWalker {
  static let tokenBeginNode: UInt32 = 1
  static let tokenEndNode: UInt32 = 2
  static let tokenProperty: UInt32 = 3
  static let tokenNop: UInt32 = 4
  static let tokenEnd: UInt32 = 9

  let bytes: UnsafeRawBufferPointer
  let structure: Range<Int>
  let strings: Range<Int>
  var cursor: Int
  /// The depth of the node the last token left the walker in: 0 outside the root, 1 in
  /// the root, 2 in one of its children, and so on.
  public private(set) var depth = 0

  init(bytes: UnsafeRawBufferPointer, structure: Range<Int>, strings: Range<Int>) {
    self.bytes = bytes
    self.structure = structure
    self.strings = strings
    cursor = structure.lowerBound
  }

  /// The next token, or nil at the end token (with every node ended).
  /// - Throws: `DeviceTreeError`: `truncated` for a token, name or value that runs past
  ///   its block (a property name past the strings block); `badStructure` for an
  ///   unknown token, an end-node at depth 0, a property at depth 0, or the end token
  ///   inside a node. After a throw or nil, calling again repeats it.
  /// - Complexity: O(1) amortized: O(length of a node name) for a begin-node, of a
  ///   property name for a property; a whole walk is O(structure block + names).
  public mutating func next() throws(DeviceTreeError) -> DeviceTreeToken? {
    while true {
      guard cursor + 4 <= structure.upperBound else { throw .truncated }
      let token = FlattenedDeviceTree.word(bytes, cursor)
      switch token {
      case DeviceTreeWalker.tokenBeginNode:
        let name = try text(at: cursor + 4, before: structure.upperBound)
        cursor += 4 + ((name.count + 1 + 3) & ~3)
        depth += 1
        return .beginNode(name)
      case DeviceTreeWalker.tokenEndNode:
        guard depth > 0 else { throw .badStructure }
        cursor += 4
        depth -= 1
        return .endNode
      case DeviceTreeWalker.tokenProperty:
        guard depth > 0 else { throw .badStructure }
        guard cursor + 12 <= structure.upperBound else { throw .truncated }
        let length = Int(FlattenedDeviceTree.word(bytes, cursor + 4))
        let nameOffset = Int(FlattenedDeviceTree.word(bytes, cursor + 8))
        let value = cursor + 12
        // Both are below 2^32: no overflow in the sums.
        guard value + length <= structure.upperBound, nameOffset < strings.count else { throw .truncated }
        let name = try text(at: strings.lowerBound + nameOffset, before: strings.upperBound)
        cursor = value + ((length + 3) & ~3)
        return .property(DeviceTreeProperty(name: name, value: UnsafeRawBufferPointer(rebasing: bytes[value..<(value + length)])))
      case DeviceTreeWalker.tokenNop:
        cursor += 4
      case DeviceTreeWalker.tokenEnd:
        guard depth == 0 else { throw .badStructure }
        return nil
      default:
        throw .badStructure
      }
    }
  }

  /// The NUL-terminated string at `start`, whose NUL must come before `limit`.
  private func text(at start: Int, before limit: Int) throws(DeviceTreeError) -> DeviceTreeText {
    var end = start
    while true {
      guard end < limit else { throw .truncated }
      if bytes[end] == 0 { return DeviceTreeText(UnsafeRawBufferPointer(rebasing: bytes[start..<end])) }
      end += 1
    }
  }
}
