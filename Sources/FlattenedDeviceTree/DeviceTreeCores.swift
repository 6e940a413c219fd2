// What the boot core needs from a device tree to start the other cores: the cpu nodes
// under /cpus (each core's MPIDR affinity, its enable-method and cpu-release-addr), the
// PSCI conduit /psci's "method" names, and the logical numbers the kernel gives the
// cores (the boot core 0, the others in /cpus order).

/// How PSCI calls reach the firmware: `hvc` (a hypervisor, as QEMU's virt without
/// EL3) or `smc` (the secure monitor).
public enum PSCIConduit: Equatable, Sendable {
  /// `HVC #0`: /psci's method is "hvc" (a hypervisor answers, as on QEMU's virt without EL3).
  case hvc
  /// `SMC #0`: /psci's method is "smc" (the secure monitor answers).
  case smc
}

/// How a cpu node says its core is started (its `enable-method`).
public enum CPUEnableMethod: Equatable, Sendable {
  /// No enable-method property.
  case unspecified
  /// "psci": PSCI CPU_ON over /psci's conduit.
  case psci
  /// "spin-table": the core waits for an entry address at `releaseAddress` (its
  /// `cpu-release-addr`, a 64-bit word).
  case spinTable(releaseAddress: UInt64)
  /// Another method, or "spin-table" without a readable cpu-release-addr.
  case unsupported
}

/// How the kernel can start a core, as its node and /psci say.
public enum CoreStart: Equatable, Sendable {
  /// PSCI CPU_ON over this conduit, with the core's MPIDR as its target.
  case psci(PSCIConduit)
  /// Write the entry address to this 64-bit word and send an event (`sev`).
  case spinTable(releaseAddress: UInt64)
  /// The tree names no way: no /psci conduit for a psci (or unspecified) node, no
  /// cpu-release-addr for a spin-table one, or a method this reader does not know.
  case none
}

/// One cpu node under /cpus.
public struct DeviceTreeCPU: Equatable, Sendable {
  /// The node's `reg`: the core's MPIDR affinity fields (Aff3 in bits 32-39, Aff2-Aff0
  /// in bits 0-23), masked with `DeviceTreeCores.affinityMask`.
  public var mpidr: UInt64
  /// Its enable-method.
  public var enableMethod: CPUEnableMethod

  /// A core with MPIDR affinity `mpidr` (masked with `affinityMask`) started by `enableMethod`.
  /// - Complexity: O(1).
  public init(mpidr: UInt64, enableMethod: CPUEnableMethod) {
    self.mpidr = mpidr & DeviceTreeCores.affinityMask
    self.enableMethod = enableMethod
  }
}

/// The cores as a device tree describes them. A description read from a tree refers to
/// the tree's bytes, which must stay where they are while it is used.
public struct DeviceTreeCores: Equatable, @unchecked Sendable {
  /// MPIDR_EL1's affinity fields: Aff0-Aff2 (bits 0-23) and Aff3 (bits 32-39).
  public static let affinityMask: UInt64 = 0xFF_00FF_FFFF

  /// /psci's (or /psci@...'s) "method": nil without such a node, or for a method other
  /// than "hvc" and "smc".
  public var psci: PSCIConduit?
  /// The `cpu@...` children of /cpus (other children, such as cpu-map, do not count).
  public var cpuNodes: Int

  /// Where the cores come from: the tree, or a numbered list built in code.
  private let source: Source

  private enum Source {
    case tree(FlattenedDeviceTree)
    case numbered(releaseBase: UInt64?, releaseStride: UInt64)
  }

  /// A description with `cpuNodes` cores numbered 0 ..< cpuNodes (MPIDR affinity =
  /// the number) and the conduit `psci`. With `releaseAddresses`, core n is started by
  /// the spin table at `base + stride × n` (the Raspberry Pis' table without a tree);
  /// without, it has no enable-method.
  /// - Complexity: O(1).
  public init(psci: PSCIConduit?, cpuNodes: Int, releaseAddresses: (base: UInt64, stride: UInt64)? = nil) {
    self.psci = psci
    self.cpuNodes = max(0, cpuNodes)
    source = .numbered(releaseBase: releaseAddresses?.base, releaseStride: releaseAddresses?.stride ?? 0)
  }

  init(psci: PSCIConduit?, cpuNodes: Int, tree: FlattenedDeviceTree) {
    self.psci = psci
    self.cpuNodes = cpuNodes
    source = .tree(tree)
  }

  /// Calls `body` with each readable cpu node in /cpus order, with its position among
  /// the cpu nodes. A node without a readable `reg` (as many cells as /cpus's
  /// #address-cells says, 1 or 2; 1 or 2 cells when it says nothing) is left out.
  /// - Complexity: O(structure block size) for a tree; O(cpuNodes) otherwise.
  public func forEachCPU(_ body: (_ node: Int, _ cpu: DeviceTreeCPU) -> Void) {
    switch source {
    case .numbered(let releaseBase, let releaseStride):
      for node in 0..<cpuNodes {
        let method: CPUEnableMethod =
          releaseBase.map { .spinTable(releaseAddress: $0 &+ releaseStride &* UInt64(node)) } ?? .unspecified
        body(node, DeviceTreeCPU(mpidr: UInt64(node), enableMethod: method))
      }
    case .tree(let tree):
      tree.forEachCPUNode(body)
    }
  }

  /// Calls `body` with each core's logical number and node, in /cpus order: the core
  /// whose MPIDR affinity is `bootMPIDR` is 0, the others 1, 2, ... in /cpus order. A
  /// node whose MPIDR an earlier node already has is left out (it names no new core).
  /// Numbers are not capped: the caller starts those below its maximum.
  /// - Returns: how many cores were numbered (the boot core included when listed).
  /// - Complexity: O(nodes × structure block size) for a tree (the duplicate check).
  @discardableResult
  public func forEachCore(bootMPIDR: UInt64, _ body: (_ logical: Int, _ cpu: DeviceTreeCPU) -> Void) -> Int {
    let boot = bootMPIDR & Self.affinityMask
    var next = 1
    var numbered = 0
    forEachCPU { node, cpu in
      guard firstNode(withMPIDR: cpu.mpidr) == node else { return }
      numbered += 1
      if cpu.mpidr == boot {
        body(0, cpu)
      } else {
        body(next, cpu)
        next += 1
      }
    }
    return numbered
  }

  /// How core `cpu` is started: its spin-table release address; else PSCI over /psci's
  /// conduit when its enable-method is "psci" or missing; else `.none`.
  /// - Complexity: O(1).
  public func start(of cpu: DeviceTreeCPU) -> CoreStart {
    switch cpu.enableMethod {
    case .spinTable(let releaseAddress): return .spinTable(releaseAddress: releaseAddress)
    case .psci, .unspecified: return psci.map { .psci($0) } ?? .none
    case .unsupported: return .none
    }
  }

  /// The position of the first readable cpu node with MPIDR affinity `mpidr`, or nil.
  /// - Complexity: O(structure block size) for a tree; O(cpuNodes) otherwise.
  public func firstNode(withMPIDR mpidr: UInt64) -> Int? {
    var found: Int? = nil
    forEachCPU { node, cpu in
      if found == nil && cpu.mpidr == mpidr & Self.affinityMask { found = node }
    }
    return found
  }

  /// Equal when the conduit, the node count and every node (position, MPIDR, method) are.
  /// - Complexity: O(nodes × structure block size).
  public static func == (left: DeviceTreeCores, right: DeviceTreeCores) -> Bool {
    guard left.psci == right.psci && left.cpuNodes == right.cpuNodes else { return false }
    var same = true
    var count = 0
    left.forEachCPU { node, cpu in
      count += 1
      var match = false
      right.forEachCPU { otherNode, other in
        if otherNode == node && other == cpu { match = true }
      }
      same = same && match
    }
    var otherCount = 0
    right.forEachCPU { _, _ in otherCount += 1 }
    return same && count == otherCount
  }
}

extension FlattenedDeviceTree {
  /// The cpu nodes and the PSCI conduit, from one walk of the structure block. The
  /// description refers to this tree's bytes (`DeviceTreeCores.forEachCPU` walks them).
  /// - Throws: `DeviceTreeError` from the walk: a tree that does not walk to its end
  ///   has no description.
  /// - Complexity: O(structure block size).
  public func cores() throws(DeviceTreeError) -> DeviceTreeCores {
    var psci: PSCIConduit? = nil
    var cpuNodes = 0
    var walker = walk()
    var inPSCI = false, inCPUs = false
    while let token = try walker.next() {
      switch token {
      case .beginNode(let name):
        if walker.depth == 2 {
          inPSCI = name.isNode("psci")
          inCPUs = name.isNode("cpus")
        } else if walker.depth == 3 && inCPUs && name.hasUnitAddress("cpu") {
          cpuNodes += 1
        }
      case .endNode:
        if walker.depth < 2 { inPSCI = false; inCPUs = false }
      case .property(let property):
        guard inPSCI && walker.depth == 2 && property.name.equals("method") else { continue }
        psci = property.isString("hvc") ? .hvc : property.isString("smc") ? .smc : nil
      }
    }
    return DeviceTreeCores(psci: psci, cpuNodes: cpuNodes, tree: self)
  }

  /// Walks /cpus and calls `body` with each `cpu@...` child that has a readable `reg`,
  /// with its position among the cpu nodes. Stops quietly at a malformed token (`cores`
  /// has walked the whole tree before any caller gets here).
  /// - Complexity: O(structure block size).
  func forEachCPUNode(_ body: (_ node: Int, _ cpu: DeviceTreeCPU) -> Void) {
    var walker = walk()
    var inCPUs = false, inCPU = false
    var addressCells: Int? = nil  // nil: /cpus does not say
    var node = -1
    var reg: UInt64? = nil
    var method = CPUEnableMethod.unspecified
    var spinTable = false
    var releaseAddress: UInt64? = nil
    while let token = try? walker.next() {
      switch token {
      case .beginNode(let name):
        if walker.depth == 2 {
          inCPUs = name.isNode("cpus")
          addressCells = nil
        } else if walker.depth == 3 && inCPUs && name.hasUnitAddress("cpu") {
          inCPU = true
          node += 1
          reg = nil
          method = .unspecified
          spinTable = false
          releaseAddress = nil
        }
      case .endNode:
        if inCPU && walker.depth == 2 {
          inCPU = false
          if spinTable { method = releaseAddress.map { .spinTable(releaseAddress: $0) } ?? .unsupported }
          if let reg { body(node, DeviceTreeCPU(mpidr: reg, enableMethod: method)) }
        }
        if walker.depth < 2 { inCPUs = false }
      case .property(let property):
        if inCPUs && !inCPU && walker.depth == 2 && property.name.equals("#address-cells") {
          addressCells = property.cell.map { Int($0) } ?? 0
        } else if inCPU && walker.depth == 3 {
          if property.name.equals("reg") {
            if let addressCells {
              reg = property.value.count == 4 * addressCells ? property.cells(at: 0, count: addressCells) : nil
            } else {
              reg = property.number
            }
          } else if property.name.equals("enable-method") {
            spinTable = property.isString("spin-table")
            method = property.isString("psci") ? .psci : .unsupported
          } else if property.name.equals("cpu-release-addr") {
            releaseAddress = property.number
          }
        }
      }
    }
  }
}
