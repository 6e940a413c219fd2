// The frequency of the counter the cores read (RISC-V's `time` CSR): /cpus's
// timebase-frequency, as RISC-V device trees give it.

extension FlattenedDeviceTree {
  /// `/cpus`'s `timebase-frequency` (one or two cells), or nil when the tree has none,
  /// or a zero.
  /// - Throws: `DeviceTreeError` for a malformed structure block.
  /// - Complexity: O(structure block).
  public func timebaseFrequency() throws(DeviceTreeError) -> UInt64? {
    guard let hz = try property("timebase-frequency", ofNode: "cpus")?.number, hz != 0 else { return nil }
    return hz
  }
}
