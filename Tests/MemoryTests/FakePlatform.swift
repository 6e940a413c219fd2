import TranslationFormats
import FlattenedDeviceTree
import Glibc
import KernelBoot

/// A host `Platform` for booting KernelBoot in tests: RAM is a host mapping seen at a
/// physical base through `directMapOffset`, the device tree a blob the test built, the
/// console a byte buffer. Cores are numbered as on the boards (the boot core, by
/// `bootMPIDR`, 0; the others in /cpus order) and those numbered below `maximumCores`
/// that the tree names a way to start (PSCI or a spin table) are started, each given a
/// stack from the boot flow; the fake records what it was asked and runs no entry.
/// With `maintenance` set (`.hosted`: no MMU walks the tables) the boot flow builds the
/// kernel map in `format`, over the simulated RAM.
final class FakePlatform: Platform {
  /// RAM as the test describes it; the mapping spans from `ramBase` to the highest end.
  let ramBase: UInt
  let ram: SimulatedRAM
  /// The tree's bytes (nil: no tree) and the physical address it claims to lie at.
  private let tree: UnsafeMutableRawBufferPointer?
  let treeAddress: UInt
  let kernelImage: KernelImage
  /// What the firmware answers without a tree (`mailboxMemory`, `boardRevisionHighMemory`).
  var mailbox: (base: UInt, size: UInt)? = nil
  var highMemory: (base: UInt, size: UInt)? = nil
  /// Where the board says its RAM ends (`boardRAMEnd`); nil: it does not say.
  var ramEnd: UInt? = nil
  /// The translation maintenance the boot flow is given; nil: no kernel map.
  var maintenance: TranslationMaintenance? = nil
  /// The kernel map's table format.
  var format: TranslationFormat = .armv8Stage1

  /// Everything written to the console.
  private(set) var output: [UInt8] = []
  /// Each `startSecondaryCores` call's description of the cores.
  private(set) var startRequests: [DeviceTreeCores?] = []
  /// The cores started, with the stack each was given, in order.
  private(set) var startedCores: [(cpu: Int, stack: UnsafeMutableRawPointer)] = []
  /// The MPIDR of each started core, in the same order.
  private(set) var startedMPIDRs: [UInt64] = []
  /// The boot core's MPIDR affinity: the core numbered 0.
  var bootMPIDR: UInt64 = 0
  /// Reports the boot flow's bad-input handler received.
  private(set) var badInputs: [String] = []
  private var ticks: UInt64 = 0

  /// A platform whose RAM mapping covers `[ramBase, ramBase + ramBytes)`, with the tree
  /// `tree` (copied) at `treeAddress` and the kernel image `kernel`.
  init(ramBase: UInt, ramBytes: Int, tree: [UInt8]?, treeAddress: UInt = 0, kernel: KernelImage) {
    self.ramBase = ramBase
    ram = SimulatedRAM(bytes: ramBytes)
    if let tree {
      let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: tree.count, alignment: 8)
      copy.copyBytes(from: tree)
      self.tree = copy
    } else {
      self.tree = nil
    }
    self.treeAddress = treeAddress
    kernelImage = kernel
  }

  deinit { tree?.deallocate() }

  /// The console output, line by line.
  var lines: [String] { String(decoding: output, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }

  func write(_ byte: UInt8) { output.append(byte) }
  func setUpConsole() {}
  func withConsoleLock(_ body: () -> Void) { body() }
  func exit(_ code: Int32) -> Never { fatalError("FakePlatform.exit(\(code)); the console said:\n\(lines.joined(separator: "\n"))") }
  var onBadInput: (BadInputReport) -> Void { { [weak self] report in self?.badInputs.append("\(report.function): \(report.reason)") } }

  var boardName: StaticString { "fake" }
  func boardModel() -> BoardModel? { BoardModel(name: "Fake Board", memoryBytes: 64 << 20, revision: 0xF4CE) }
  var entryLevel: UInt { 2 }
  var runningLevel: UInt { 1 }
  /// Named as AArch64's exception levels.
  func privilegeName(_ level: UInt) -> StaticString { level == 2 ? "EL2" : "EL1" }
  /// A microsecond a reading.
  var counter: UInt64 {
    ticks += 1
    return ticks
  }
  var counterFrequency: UInt64 { 1_000_000 }

  func deviceTree() -> DeviceTreeBlob? {
    tree.map { DeviceTreeBlob(physicalAddress: treeAddress, bytes: UnsafeRawBufferPointer($0)) }
  }
  func mailboxMemory() -> (base: UInt, size: UInt)? { mailbox }
  func boardRevisionHighMemory() -> (base: UInt, size: UInt)? { highMemory }
  var mappedLimit: UInt { ramBase + UInt(ram.bytes) }
  var directMapOffset: Int { Int(bitPattern: ram.base) - Int(bitPattern: ramBase) }
  var zeroFill: ZeroFill { hostZeroFill }

  var maximumCores: Int { 8 }
  var coresWithoutTree: Int { 1 }
  func boardRAMEnd() -> UInt? { ramEnd }
  func startSecondaryCores(
    described: DeviceTreeCores?, entry: SecondaryEntry?, stackBytes: Int, exceptionStackBytes: Int,
    allocateStack: (_ cpu: Int, _ exception: Bool) -> UnsafeMutableRawPointer?,
    freeStack: (_ cpu: Int, _ stack: UnsafeMutableRawPointer, _ exception: Bool) -> Void
  ) -> Int {
    startRequests.append(described)
    guard let described else { return onlineCores }
    described.forEachCore(bootMPIDR: bootMPIDR) { cpu, core in
      guard cpu != 0, cpu < maximumCores, described.start(of: core) != .none, let stack = allocateStack(cpu, false) else { return }
      startedCores.append((cpu, stack))
      startedMPIDRs.append(core.mpidr)
    }
    return onlineCores
  }
  func isCoreOnline(_ cpu: Int) -> Bool { cpu == 0 || startedCores.contains { $0.cpu == cpu } }
  var cpuNumbering: CPUNumbering { .threads }

  var translationMaintenance: TranslationMaintenance? { maintenance }
  var translationFormat: TranslationFormat { format }
}
