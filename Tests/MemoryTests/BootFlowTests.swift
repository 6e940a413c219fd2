import KernelMemory
import FlattenedDeviceTree
import VirtualMemory
import KernelBoot
import KernelHeap
import Testing

/// KernelBoot's boot flow on the fake platform, with trees built here: the console's
/// banner, RAM and map lines, the memory map against the tree's RAM and reservations,
/// the cores the platform was asked to start, and the bad-input handler it installs.
/// In KernelGlobalsTests' serialized suite: the boot installs the kernel-wide
/// `kernelMemory` and `badInputHandler`.
extension KernelGlobalsTests {
  static let ramBase: UInt = 0x4000_0000
  /// Two RAM ranges with a hole between them: 16 MiB and 8 MiB.
  static let bootRAM: [(start: UInt, end: UInt)] = [(0x4000_0000, 0x4100_0000), (0x4200_0000, 0x4280_0000)]
  static let bootReservation: (start: UInt, size: UInt) = (0x40C0_1000, 0x3000)
  static let treeAddress: UInt = 0x40E0_0000
  static let bootKernel = KernelImage(start: 0x4020_0000, end: 0x4030_0000)

  /// The test's tree: `bootRAM` in one memory node, `bootReservation` in /memreserve/,
  /// `cpus` cpu nodes (reg `regs[n]`, else n), and /psci with `method` (none when nil).
  static func bootTree(cpus: Int, method: String?, regs: [UInt32]? = nil) -> [UInt8] {
    var b = DeviceTreeBuilder()
    b.reserveMap = [(UInt64(bootReservation.start), UInt64(bootReservation.size))]
    b.begin("")
    b.cells("#address-cells", [2])
    b.cells("#size-cells", [2])
    b.begin("memory@40000000")
    b.property("device_type", Array("memory".utf8) + [0])
    b.reg(bootRAM.map { (UInt64($0.start), UInt64($0.end - $0.start)) })
    b.end()
    if let method {
      b.begin("psci")
      b.property("method", Array(method.utf8) + [0])
      b.end()
    }
    b.begin("cpus")
    for index in 0..<cpus {
      b.begin("cpu@\(index)")
      b.cells("reg", [regs?[index] ?? UInt32(index)])
      b.end()
    }
    b.end()
    b.begin("chosen")
    b.end()
    b.end()
    return b.build()
  }

  /// `value` as the console prints addresses in the map: 0x and at least 8 hex digits.
  static func hex8(_ value: UInt) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
  }

  /// A map line's fields: (label, start, end, pages), or nil for another line.
  static func region(_ line: String) -> (label: String, start: UInt, end: UInt, pages: Int)? {
    let fields = line.split(separator: " ")
    guard line.hasPrefix("  "), fields.count == 5, fields[4] == "pages", fields[1].hasPrefix("[0x"), fields[2].hasPrefix("0x"),
      let start = UInt(fields[1].dropFirst(3).dropLast(), radix: 16), let end = UInt(fields[2].dropFirst(2).dropLast(), radix: 16),
      let pages = Int(fields[3])
    else { return nil }
    return (String(fields[0]), start, end, pages)
  }

  @Test("bootMemory on the fake platform: two RAM ranges, a /memreserve/ entry, 8 cpu nodes with psci")
  func bootOnFakePlatform() throws {
    let blob = Self.bootTree(cpus: 8, method: "hvc")
    let fake = FakePlatform(ramBase: Self.ramBase, ramBytes: Int(Self.bootRAM[1].end - Self.ramBase), tree: blob,
                            treeAddress: Self.treeAddress, kernel: Self.bootKernel)
    defer {
      kernelMemory = KernelMemory()
      badInputHandler = { _ in }
    }
    let layout = fake.bootMemory()
    let lines = fake.lines

    // The banner and what the tree gave, as the kernel prints them.
    let ramBytes = Self.bootRAM.reduce(0) { $0 + $1.end - $1.start }
    #expect(Array(lines.prefix(6)) == [
      "SwiftKernelMemory: board fake (Fake Board, 64 MiB, revision 0xf4ce), entered at EL2, running at EL1",
      "device tree at 0x40e00000 (\(blob.count) bytes): 2 RAM ranges, 1 memreserve, 0 reserved-memory (0 no-map)",
      "RAM [0x40000000, 0x41000000) 16 MiB, from the device tree",
      "RAM [0x42000000, 0x42800000) 8 MiB, from the device tree",
      "kernel [0x40200000, 0x40300000)",
      "memory map:",
    ])
    #expect(lines.contains("  total \(ramBytes / 4096) pages = \(ramBytes) bytes; firmware's RAM \(ramBytes) bytes: exact"))
    #expect(lines.suffix(2) == ["cores online: 8", ""])

    // The map: whole pages, in order, covering exactly the tree's RAM ranges.
    let regions = lines.compactMap(Self.region)
    var covered: [(start: UInt, end: UInt)] = []
    for region in regions {
      #expect(region.pages == Int((region.end - region.start) / 4096), "\(region)")
      if let last = covered.last, last.end == region.start {
        covered[covered.count - 1].end = region.end
      } else {
        covered.append((region.start, region.end))
      }
    }
    #expect(covered.map { [$0.start, $0.end] } == Self.bootRAM.map { [$0.start, $0.end] })
    // The tree's reservations and the kernel, each exactly where the test put it; RAM
    // below the kernel is the firmware's (memInit's rule).
    let treeEnd = (Self.treeAddress + UInt(blob.count) + 4095) / 4096 * 4096
    let reservation = (Self.bootReservation.start, Self.bootReservation.start + Self.bootReservation.size)
    for expected in [("dtb", Self.treeAddress, treeEnd), ("reserved", reservation.0, reservation.1),
                     ("kernel", Self.bootKernel.start, Self.bootKernel.end), ("firmware", Self.ramBase, Self.bootKernel.start)] {
      #expect(regions.contains { $0.label == expected.0 && $0.start == expected.1 && $0.end == expected.2 }, "\(expected)")
    }
    // The heap line: 1 MiB, the same range as the map's heap region.
    let heapLine = "heap [0x\(String(layout.heapStart, radix: 16)), 0x\(String(layout.heapEnd, radix: 16)))"
    #expect(lines.contains(heapLine) && layout.heapEnd - layout.heapStart == 1 << 20)
    #expect(regions.contains { $0.label == "heap" && $0.start == layout.heapStart && $0.end == layout.heapEnd })

    // The cores: asked once, with what the tree says; cores 1-7 started, each with a
    // 32 KiB stack from pages the map showed free and that are allocated now.
    #expect(fake.startRequests == [DeviceTreeCores(psci: .hvc, cpuNodes: 8)])
    #expect(fake.startedCores.map(\.cpu) == Array(1..<8))
    let maybeFrames = kernelMemory.frames
    let frames = try #require(maybeFrames)
    for (cpu, stack) in fake.startedCores {
      let physical = frames.physical(of: stack)
      #expect(regions.contains { $0.label == "free" && $0.start <= physical && physical + 0x8000 <= $0.end }, "cpu \(cpu)")
      #expect(frames.owner(ofPhysical: physical) == .allocated && frames.owner(ofPhysical: physical + 0x7000) == .allocated)
    }

    // Step 0: bad input goes to the platform's handler.
    let p = try #require(kmalloc(64))
    kfree(p + 16)
    kfree(p)
    #expect(fake.badInputs.count == 1 && fake.badInputs.first?.hasPrefix("kfree: ") == true)
  }

  @Test("bootMemory with a kernel map (hosted maintenance): tables in the platform's format, vmalloc and the cores' stacks in its window", arguments: TestedFormat.allCases)
  func bootWithKernelMap(_ tested: TestedFormat) throws {
    let blob = Self.bootTree(cpus: 4, method: "hvc")
    let fake = FakePlatform(ramBase: Self.ramBase, ramBytes: Int(Self.bootRAM[1].end - Self.ramBase), tree: blob,
                            treeAddress: Self.treeAddress, kernel: Self.bootKernel)
    fake.maintenance = .hosted
    fake.format = tested.format
    defer {
      kernelAddressSpace = nil
      kernelMapRegions = nil
      kernelMemory = KernelMemory()
      badInputHandler = { _ in }
    }
    fake.bootMemory()
    let space = try #require(kernelAddressSpace)
    let window = tested.format.vmallocWindow
    #expect(space.format == tested.format)
    #expect(space.vmallocRange == window)
    #expect(fake.lines.contains(
      "  vmalloc and stacks [0x\(String(window.lowerBound, radix: 16)), 0x\(String(window.upperBound, radix: 16))) rw- on demand, guard pages unmapped"))
    // Each started core's stack: from vmalloc, in the window, with its guard page below.
    #expect(fake.startedCores.map(\.cpu) == [1, 2, 3])
    for (cpu, stack) in fake.startedCores {
      let bottom = UInt(bitPattern: stack)
      #expect(window.contains(bottom) && space.vmallocArea(containing: bottom)?.stackOfCPU == cpu)
      #expect(space.vmallocArea(containing: bottom - 1)?.inGuardPage == true)
    }
    // The identity map, read back by the format's own walk: the image (the fake's one
    // region, read-execute), the direct map read-write; nothing in the RAM hole.
    let maybeFrames = kernelMemory.frames
    let frames = try #require(maybeFrames)
    let walker = TranslationWalker(root: space.root, scheme: tested) { frames.pointer(toPhysical: $0).load(as: UInt64.self) }
    for (address, expected) in [(Self.bootKernel.start, MapAttributes([.read, .execute, .global])), (Self.ramBase, .kernelData),
                                (Self.bootRAM[1].start + 0x1000, .kernelData)] {
      guard case .success(let leaf) = walker.walk(address) else {
        Issue.record("\(hex(address)) not mapped")
        continue
      }
      #expect(leaf.physical == address && leaf.mapAttributes == expected, "\(hex(address))")
      #expect(space.translate(address)?.attributes == expected)
    }
    #expect(space.translate(Self.bootRAM[0].end) == nil)
    #expect(space.checkInvariants() == nil)
  }

  @Test("bootMemory on the fake platform: RAM the tree claims at or above where the board says its RAM ends is left out, and said")
  func boardRAMEndCapsTheTree() throws {
    let blob = Self.bootTree(cpus: 1, method: "hvc")
    let fake = FakePlatform(ramBase: Self.ramBase, ramBytes: Int(Self.bootRAM[1].end - Self.ramBase), tree: blob,
                            treeAddress: Self.treeAddress, kernel: Self.bootKernel)
    // The board says its RAM ends where the tree's first range does: the second range
    // (8 MiB at 0x42000000) is more than it has.
    fake.ramEnd = Self.bootRAM[0].end
    defer {
      kernelMemory = KernelMemory()
      badInputHandler = { _ in }
    }
    _ = fake.bootMemory()
    let lines = fake.lines
    #expect(lines.contains("RAM above 0x\(String(Self.bootRAM[0].end, radix: 16)) is more than the board has (board revision): 8 MiB not used"))
    let part = kernelMemory.frames
    let frames = try #require(part)
    #expect(frames.end == Self.bootRAM[0].end)
    #expect(frames.owner(ofPhysical: Self.bootRAM[1].start) == nil)
  }

  @Test("bootMemory on the fake platform: a tree without /psci starts no core")
  func bootWithoutPSCI() throws {
    let fake = FakePlatform(ramBase: Self.ramBase, ramBytes: Int(Self.bootRAM[1].end - Self.ramBase),
                            tree: Self.bootTree(cpus: 8, method: nil), treeAddress: Self.treeAddress, kernel: Self.bootKernel)
    defer {
      kernelMemory = KernelMemory()
      badInputHandler = { _ in }
    }
    fake.bootMemory()
    #expect(fake.startRequests == [DeviceTreeCores(psci: nil, cpuNodes: 8)])
    #expect(fake.startedCores.isEmpty && fake.lines.suffix(2) == ["cores online: 1", ""])
  }

  @Test("bootMemory on the fake platform: the boot core is 0, the others numbered in /cpus order up to the maximum")
  func bootNumbersCores() throws {
    // Twelve cores in two clusters of eight (Aff1 = n / 8), listed out of order; the boot
    // core is the tree's fourth. The fake runs at most 8 cores.
    let regs: [UInt32] = [0x101, 0x0, 0x100, 0x1, 0x102, 0x2, 0x103, 0x3, 0x104, 0x4, 0x105, 0x5]
    let fake = FakePlatform(ramBase: Self.ramBase, ramBytes: Int(Self.bootRAM[1].end - Self.ramBase),
                            tree: Self.bootTree(cpus: regs.count, method: "smc", regs: regs), treeAddress: Self.treeAddress,
                            kernel: Self.bootKernel)
    fake.bootMPIDR = 0x1
    defer {
      kernelMemory = KernelMemory()
      badInputHandler = { _ in }
    }
    fake.bootMemory()
    #expect(fake.startedCores.map(\.cpu) == Array(1..<8))
    // /cpus order without the boot core (0x1), the first seven.
    #expect(fake.startedMPIDRs == [0x101, 0x0, 0x100, 0x102, 0x2, 0x103, 0x3])
    #expect(fake.lines.suffix(2) == ["cores online: 8", ""])
  }

  @Test("bootMemory on the fake platform: no tree, RAM from the mailbox and the board revision")
  func bootFromMailbox() throws {
    let fake = FakePlatform(ramBase: Self.ramBase, ramBytes: Int(Self.bootRAM[1].end - Self.ramBase), tree: nil,
                            kernel: Self.bootKernel)
    fake.mailbox = (Self.bootRAM[0].start, Self.bootRAM[0].end - Self.bootRAM[0].start)
    fake.highMemory = (Self.bootRAM[1].start, Self.bootRAM[1].end - Self.bootRAM[1].start)
    defer {
      kernelMemory = KernelMemory()
      badInputHandler = { _ in }
    }
    fake.bootMemory()
    let lines = fake.lines
    #expect(Array(lines[1...3]) == [
      "RAM [0x40000000, 0x41000000) 16 MiB, from the mailbox",
      "RAM [0x42000000, 0x42800000) 8 MiB, from the board revision",
      "kernel [0x40200000, 0x40300000)",
    ])
    #expect(fake.startRequests.count == 1 && fake.startRequests[0] == nil)
    #expect(fake.lines.suffix(2) == ["cores online: 1", ""])
  }
}
