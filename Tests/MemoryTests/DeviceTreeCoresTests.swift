import Synchronization
import FlattenedDeviceTree
import Foundation
import Testing

/// The /cpus and /psci reader and the walker under it, against trees built in the test:
/// the counts and conduits the test wrote, and malformed trees refused with a typed error.
struct DeviceTreeCoresTests {
  /// A tree with `cpus` cpu nodes (plus a cpu-map, which is not a cpu), a /psci node
  /// named `psciName` with `method` when given, and a memory node.
  static func tree(cpus: Int, psciName: String = "psci", method: String? = "hvc", cpusName: String = "cpus") -> [UInt8] {
    var b = DeviceTreeBuilder()
    b.begin("")
    b.cells("#address-cells", [2])
    b.cells("#size-cells", [2])
    if let method {
      b.begin(psciName)
      b.property("compatible", Array("arm,psci-1.0".utf8) + [0])
      b.property("method", Array(method.utf8) + [0])
      b.end()
    }
    b.begin(cpusName)
    b.cells("#address-cells", [1])
    b.cells("#size-cells", [0])
    b.begin("cpu-map")
    b.begin("cluster0")
    b.end()
    b.end()
    for index in 0..<cpus {
      b.begin("cpu@\(index)")
      b.property("device_type", Array("cpu".utf8) + [0])
      b.cells("reg", [UInt32(index)])
      b.end()
    }
    b.end()
    b.begin("memory@40000000")
    b.reg([(0x4000_0000, 1 << 30)])
    b.end()
    b.end()
    return b.build()
  }

  /// Blobs `cores` has read, kept for the whole run: a `DeviceTreeCores` read from a tree
  /// goes on reading it (as the kernel's does its reserved blob), so the bytes must
  /// outlive the value the test compares.
  static let keptBlobs = Mutex<[UnsafeMutableRawBufferPointer]>([])

  static func cores(_ blob: [UInt8]) throws(DeviceTreeError) -> DeviceTreeCores {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(blob.count, 1), alignment: 8)
    copy.copyBytes(from: blob)
    keptBlobs.withLock { $0.append(copy) }
    return try FlattenedDeviceTree(blob: UnsafeRawBufferPointer(rebasing: copy[0..<blob.count])).cores()
  }

  @Test("8 cpu nodes with psci hvc, and with psci smc")
  func eightCores() throws {
    #expect(try Self.cores(Self.tree(cpus: 8, method: "hvc")) == DeviceTreeCores(psci: .hvc, cpuNodes: 8))
    #expect(try Self.cores(Self.tree(cpus: 8, method: "smc")) == DeviceTreeCores(psci: .smc, cpuNodes: 8))
    // A unit address on /psci and /cpus does not hide them.
    #expect(try Self.cores(Self.tree(cpus: 3, psciName: "psci@0", method: "smc", cpusName: "cpus@0")) == DeviceTreeCores(psci: .smc, cpuNodes: 3))
  }

  @Test("no /psci node, another method, or a method that is not a string of its own: no conduit")
  func noConduit() throws {
    #expect(try Self.cores(Self.tree(cpus: 4, method: nil)) == DeviceTreeCores(psci: nil, cpuNodes: 4))
    #expect(try Self.cores(Self.tree(cpus: 2, method: "spin-table")) == DeviceTreeCores(psci: nil, cpuNodes: 2))
    #expect(try Self.cores(Self.tree(cpus: 2, method: "hvcx")) == DeviceTreeCores(psci: nil, cpuNodes: 2))
    // A node named like psci deeper in the tree is not /psci; cpu nodes outside /cpus do not count.
    var b = DeviceTreeBuilder()
    b.begin("")
    b.begin("soc")
    b.begin("psci")
    b.property("method", Array("hvc".utf8) + [0])
    b.end()
    b.begin("cpu@0")
    b.end()
    b.end()
    b.end()
    #expect(try Self.cores(b.build()) == DeviceTreeCores(psci: nil, cpuNodes: 0))
  }

  @Test("malformed trees: every prefix, an unknown token, unbalanced nodes, a name outside the strings")
  func malformed() throws {
    let good = Self.tree(cpus: 8)
    for length in 0..<good.count {
      #expect(throws: DeviceTreeError.self) { try Self.cores(Array(good[0..<length])) }
    }
    var bad = good
    bad[0] = 0
    #expect(throws: DeviceTreeError.badMagic) { try Self.cores(bad) }

    var b = DeviceTreeBuilder()
    b.begin("")
    b.rawWord(7)  // no such token
    b.end()
    #expect(throws: DeviceTreeError.badStructure) { try Self.cores(b.build()) }

    b = DeviceTreeBuilder()
    b.begin("")
    b.end()
    b.end()  // ends a node that was never begun
    #expect(throws: DeviceTreeError.badStructure) { try Self.cores(b.build()) }

    b = DeviceTreeBuilder()
    b.begin("")
    b.begin("cpus")  // never ended: the end token comes inside a node
    b.end()
    #expect(throws: DeviceTreeError.badStructure) { try Self.cores(b.build()) }

    // The name offset of the root's first property, pointed past the strings block.
    b = DeviceTreeBuilder()
    b.begin("")
    b.cells("#size-cells", [2])
    b.end()
    var blob = b.build()
    let nameOffset = 40 + 8 + 16 + 8 + 8  // header, padding, reserve map, begin-node + name, token and length
    blob[nameOffset] = 0x01
    #expect(throws: DeviceTreeError.truncated) { try Self.cores(blob) }
  }

  @Test("the walker hands back the nodes, depths and properties the builder wrote, NOPs skipped")
  func walkerRoundTrip() throws {
    var b = DeviceTreeBuilder()
    b.begin("")
    b.rawWord(4)  // NOP
    b.cells("#size-cells", [1])
    b.begin("a@1")
    b.property("empty", [])
    b.begin("b")
    b.property("bytes", [1, 2, 3, 4, 5, 6, 7, 8])
    b.end()
    b.end()
    b.end()
    let blob = b.build()
    var seen: [String] = []
    var failure: DeviceTreeError? = nil
    blob.withUnsafeBytes { bytes in
      do throws(DeviceTreeError) {
        var walker = try FlattenedDeviceTree(blob: bytes).walk()
        while let token = try walker.next() {
          switch token {
          case .beginNode(let name): seen.append("begin \(String(decoding: name.bytes, as: UTF8.self)) \(walker.depth)")
          case .endNode: seen.append("end \(walker.depth)")
          case .property(let p):
            seen.append("property \(String(decoding: p.name.bytes, as: UTF8.self)) \(Array(p.value)) \(walker.depth)")
          }
        }
      } catch {
        failure = error
      }
    }
    #expect(failure == nil)
    #expect(seen == ["begin  1", "property #size-cells [0, 0, 0, 1] 1", "begin a@1 2", "property empty [] 2", "begin b 3",
      "property bytes [1, 2, 3, 4, 5, 6, 7, 8] 3", "end 2", "end 1", "end 0"])
  }

  /// What dtc shows in each seed of Fuzz/dtb-corpus (`dtc -I dtb -O dts`): QEMU's virt
  /// trees have one cpu node and psci over hvc, the Pi trees neither, the
  /// cpus8-smc seed eight cpu nodes and psci over smc.
  static let corpusCores: [String: DeviceTreeCores] = [
    "virt.dtb": DeviceTreeCores(psci: .hvc, cpuNodes: 1), "virt-numa.dtb": DeviceTreeCores(psci: .hvc, cpuNodes: 1),
    "virt-reserved.dtb": DeviceTreeCores(psci: .hvc, cpuNodes: 1), "raspi3b.dtb": DeviceTreeCores(psci: nil, cpuNodes: 0),
    "raspi4b.dtb": DeviceTreeCores(psci: nil, cpuNodes: 0), "cpus8-smc.dtb": DeviceTreeCores(psci: .smc, cpuNodes: 8),
  ]

  @Test("the cores of every tree in the DTB corpus, as dtc shows them", arguments: DeviceTreeCorpusTests.inputs)
  func corpus(_ name: String) throws {
    let data = try Data(contentsOf: DeviceTreeCorpusTests.corpus.appendingPathComponent(name))
    let expected = try #require(Self.corpusCores[name], "\(name) has no expectation here")
    let cores = try Self.cores([UInt8](data))
    #expect(cores.psci == expected.psci && cores.cpuNodes == expected.cpuNodes)
    // Each cpu node's reg is its number (dtc shows reg = <n>), started over /psci's conduit.
    let numbered = try DeviceTreeCoreNumberingTests.numbered([UInt8](data), boot: 0)
    let conduit = try #require(expected.psci ?? (expected.cpuNodes == 0 ? .hvc : nil))
    #expect(DeviceTreeCoreNumberingTests.same(numbered, (0..<expected.cpuNodes).map { ($0, UInt64($0), .psci(conduit)) }))
  }
}

/// The cpu nodes themselves and the logical numbers the kernel gives the cores, against
/// trees built here: each core's MPIDR, method and number are the ones the test wrote
/// and works out by hand.
struct DeviceTreeCoreNumberingTests {
  /// A cpu node: its reg cells, and its enable-method and cpu-release-addr when given.
  struct Node {
    var reg: [UInt32]
    var method: String? = nil
    var releaseAddress: UInt64? = nil
  }

  /// A tree with /psci (`method`, none when nil) and `nodes` under /cpus, whose
  /// #address-cells is `addressCells` (none when nil).
  static func tree(_ nodes: [Node], psci: String? = "hvc", addressCells: UInt32? = 2) -> [UInt8] {
    var b = DeviceTreeBuilder()
    b.begin("")
    if let psci {
      b.begin("psci")
      b.property("method", Array(psci.utf8) + [0])
      b.end()
    }
    b.begin("cpus")
    if let addressCells { b.cells("#address-cells", [addressCells]) }
    b.cells("#size-cells", [0])
    for (index, node) in nodes.enumerated() {
      b.begin("cpu@\(index)")
      b.property("device_type", Array("cpu".utf8) + [0])
      b.cells("reg", node.reg)
      if let method = node.method { b.property("enable-method", Array(method.utf8) + [0]) }
      if let address = node.releaseAddress { b.cells("cpu-release-addr", [UInt32(address >> 32), UInt32(address & 0xFFFF_FFFF)]) }
      b.end()
    }
    b.end()
    b.end()
    return b.build()
  }

  /// (logical number, MPIDR, how it starts) of every numbered core, in call order.
  static func numbered(_ blob: [UInt8], boot: UInt64) throws -> [(Int, UInt64, CoreStart)] {
    var result: [(Int, UInt64, CoreStart)] = []
    var failure: DeviceTreeError? = nil
    blob.withUnsafeBytes { bytes in
      do throws(DeviceTreeError) {
        let cores = try FlattenedDeviceTree(blob: bytes).cores()
        cores.forEachCore(bootMPIDR: boot) { logical, cpu in result.append((logical, cpu.mpidr, cores.start(of: cpu))) }
      } catch {
        failure = error
      }
    }
    if let failure { throw failure }
    return result
  }

  static func same(_ a: [(Int, UInt64, CoreStart)], _ b: [(Int, UInt64, CoreStart)]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 && $0.2 == $1.2 }
  }

  @Test("17 cores as QEMU's virt with GICv3 lists them: MPIDR 0x100 is cpu 16, not a second boot core")
  func seventeenCores() throws {
    // virt with gic-version=3 puts 16 cores in a cluster: core n has Aff1 = n / 16, Aff0 = n % 16.
    let regs = (0..<17).map { UInt32(($0 / 16) << 8 | $0 % 16) }
    let got = try Self.numbered(Self.tree(regs.map { Node(reg: [0, $0], method: "psci") }), boot: 0)
    let expected = (0..<17).map { ($0, UInt64(regs[$0]), CoreStart.psci(.hvc)) }
    #expect(Self.same(got, expected))
    #expect(got.filter { $0.0 == 0 }.count == 1 && got[16].1 == 0x100)
  }

  @Test("the boot core is 0 wherever it is listed; the others follow /cpus order; Aff3 counts; duplicates are left out")
  func order() throws {
    let nodes = [Node(reg: [0, 0x1]), Node(reg: [0, 0x100]), Node(reg: [0x1, 0x0]), Node(reg: [0, 0x0]), Node(reg: [0, 0x1]),
                 Node(reg: [0, 0x2])]
    let got = try Self.numbered(Self.tree(nodes), boot: 0x100)
    #expect(Self.same(got, [(1, 0x1, .psci(.hvc)), (0, 0x100, .psci(.hvc)), (2, 0x1_0000_0000, .psci(.hvc)),
                            (3, 0x0, .psci(.hvc)), (4, 0x2, .psci(.hvc))]))
    // A boot core the tree does not list: the others still start at 1.
    let unlisted = try Self.numbered(Self.tree([Node(reg: [0, 5]), Node(reg: [0, 6])]), boot: 0)
    #expect(Self.same(unlisted, [(1, 5, .psci(.hvc)), (2, 6, .psci(.hvc))]))
    // MPIDR bits outside the affinity fields (bit 31, the U bit) do not tell cores apart.
    let masked = try Self.numbered(Self.tree([Node(reg: [0, 0x8000_0000]), Node(reg: [0, 0x8000_0001])]), boot: 0x8000_0000)
    #expect(Self.same(masked, [(0, 0, .psci(.hvc)), (1, 1, .psci(.hvc))]))
  }

  @Test("how each core starts: PSCI only with a /psci conduit, spin-table only with its release address")
  func methods() throws {
    let nodes = [Node(reg: [0, 0], method: "psci"), Node(reg: [0, 1], method: "spin-table", releaseAddress: 0xe0),
                 Node(reg: [0, 2], method: "spin-table"), Node(reg: [0, 3]), Node(reg: [0, 4], method: "brcm,bcm2836-smp")]
    #expect(Self.same(try Self.numbered(Self.tree(nodes, psci: "smc"), boot: 0),
                      [(0, 0, .psci(.smc)), (1, 1, .spinTable(releaseAddress: 0xe0)), (2, 2, .none), (3, 3, .psci(.smc)), (4, 4, .none)]))
    // Without /psci (QEMU's virt with secure=on): no way for psci or unspecified nodes.
    #expect(Self.same(try Self.numbered(Self.tree(nodes, psci: nil), boot: 0),
                      [(0, 0, .none), (1, 1, .spinTable(releaseAddress: 0xe0)), (2, 2, .none), (3, 3, .none), (4, 4, .none)]))
    // A 64-bit release address above 4 GiB is kept whole.
    #expect(Self.same(try Self.numbered(Self.tree([Node(reg: [0, 7], method: "spin-table", releaseAddress: 0x1_0000_00d8)]), boot: 0),
                      [(1, 7, .spinTable(releaseAddress: 0x1_0000_00d8))]))
  }

  @Test("reg as #address-cells says: one cell, two, or either when /cpus does not say; others are left out")
  func regCells() throws {
    let one = try Self.numbered(Self.tree([Node(reg: [0]), Node(reg: [1]), Node(reg: [0, 2])], addressCells: 1), boot: 0)
    #expect(Self.same(one, [(0, 0, .psci(.hvc)), (1, 1, .psci(.hvc))]))
    let unsaid = try Self.numbered(Self.tree([Node(reg: [0]), Node(reg: [0, 1]), Node(reg: [0, 0, 2]), Node(reg: [])],
                                             addressCells: nil), boot: 0)
    #expect(Self.same(unsaid, [(0, 0, .psci(.hvc)), (1, 1, .psci(.hvc))]))
    // The node count still counts every cpu node.
    #expect(try DeviceTreeCoresTests.cores(Self.tree([Node(reg: [0]), Node(reg: [])], addressCells: 1)).cpuNodes == 2)
  }

  @Test("a description built in code: cores 0 ..< n, the Pis' spin table at base + stride × n")
  func numberedInCode() {
    let pis = DeviceTreeCores(psci: nil, cpuNodes: 4, releaseAddresses: (0xd8, 8))
    var got: [(Int, UInt64, CoreStart)] = []
    #expect(pis.forEachCore(bootMPIDR: 0) { got.append(($0, $1.mpidr, pis.start(of: $1))) } == 4)
    #expect(Self.same(got, [(0, 0, .spinTable(releaseAddress: 0xd8)), (1, 1, .spinTable(releaseAddress: 0xe0)),
                            (2, 2, .spinTable(releaseAddress: 0xe8)), (3, 3, .spinTable(releaseAddress: 0xf0))]))
    #expect(DeviceTreeCores(psci: nil, cpuNodes: -3).cpuNodes == 0)
    #expect(DeviceTreeCores(psci: .hvc, cpuNodes: 2) != DeviceTreeCores(psci: .hvc, cpuNodes: 2, releaseAddresses: (0xd8, 8)))
  }
}
