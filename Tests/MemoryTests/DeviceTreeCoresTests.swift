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

  static func cores(_ blob: [UInt8]) throws(DeviceTreeError) -> DeviceTreeCores {
    var result: Result<DeviceTreeCores, DeviceTreeError> = .failure(.truncated)
    blob.withUnsafeBytes { bytes in
      do throws(DeviceTreeError) {
        result = .success(try FlattenedDeviceTree(blob: bytes).cores())
      } catch {
        result = .failure(error)
      }
    }
    return try result.get()
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
    #expect(try Self.cores([UInt8](data)) == expected)
  }
}
