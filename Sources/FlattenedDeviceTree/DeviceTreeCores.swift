// What the boot core needs from a device tree to start the other cores: the number of
// cpu nodes under /cpus and the PSCI conduit /psci's "method" names.

/// How PSCI calls reach the firmware: `hvc` (a hypervisor, as QEMU's virt without
/// EL3) or `smc` (the secure monitor).
public enum PSCIConduit: Equatable, Sendable {
  /// `HVC #0`: /psci's method is "hvc" (a hypervisor answers, as on QEMU's virt without EL3).
  case hvc
  /// `SMC #0`: /psci's method is "smc" (the secure monitor answers).
  case smc
}

/// The cores as a device tree describes them.
public struct DeviceTreeCores: Equatable, Sendable {
  /// /psci's (or /psci@...'s) "method": nil without such a node, or for a method other
  /// than "hvc" and "smc".
  public var psci: PSCIConduit?
  /// The `cpu@...` children of /cpus (other children, such as cpu-map, do not count).
  public var cpuNodes: Int

  /// A description with `cpuNodes` cpu nodes and the conduit `psci`.
  /// - Complexity: O(1).
  public init(psci: PSCIConduit?, cpuNodes: Int) {
    self.psci = psci
    self.cpuNodes = cpuNodes
  }
}

extension FlattenedDeviceTree {
  /// The cpu nodes and the PSCI conduit, from one walk of the structure block.
  /// - Throws: `DeviceTreeError` from the walk: a tree that does not walk to its end
  ///   has no description.
  /// - Complexity: O(structure block size).
  public func cores() throws(DeviceTreeError) -> DeviceTreeCores {
    var found = DeviceTreeCores(psci: nil, cpuNodes: 0)
    var walker = walk()
    var inPSCI = false, inCPUs = false
    while let token = try walker.next() {
      switch token {
      case .beginNode(let name):
        if walker.depth == 2 {
          inPSCI = name.isNode("psci")
          inCPUs = name.isNode("cpus")
        } else if walker.depth == 3 && inCPUs && name.hasUnitAddress("cpu") {
          found.cpuNodes += 1
        }
      case .endNode:
        if walker.depth < 2 { inPSCI = false; inCPUs = false }
      case .property(let property):
        guard inPSCI && walker.depth == 2 && property.name.equals("method") else { continue }
        found.psci = property.isString("hvc") ? .hvc : property.isString("smc") ? .smc : nil
      }
    }
    return found
  }
}
