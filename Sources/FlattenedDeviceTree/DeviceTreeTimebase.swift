// The frequency of the counter the cores read (RISC-V's `time` CSR): /cpus's
// timebase-frequency, as RISC-V device trees give it.

extension FlattenedDeviceTree {
  /// `/cpus`'s `timebase-frequency` (one or two cells), or nil when the tree has none,
  /// or a zero.
  /// - Throws: `DeviceTreeError` for a malformed structure block.
  /// - Complexity: O(structure block).
  public func timebaseFrequency() throws(DeviceTreeError) -> UInt64? {
    var walker = walk()
    var inCPUs = false
    while let token = try walker.next() {
      switch token {
      case .beginNode(let name):
        if walker.depth == 2 { inCPUs = name.equals("cpus") }
      case .endNode:
        if walker.depth < 2 { inCPUs = false }
      case .property(let property):
        guard inCPUs, walker.depth == 2, property.name.equals("timebase-frequency") else { continue }
        guard let hz = property.number, hz != 0 else { return nil }
        return hz
      }
    }
    return nil
  }
}
