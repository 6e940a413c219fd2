// What the boot flow needs from the machine it runs on, as one protocol: the AArch64
// boards implement it in Arch, host tests with a fake. KernelBoot's boot flow is generic
// over it, so the kernel calls each board's code directly (specialized, no existential).
import FlattenedDeviceTree
@_exported import KernelSync
import PageFrames
@_exported import VirtualMemory

/// What a started core runs once it is online, given its number (1 ..< cores); the core
/// parks for good when it returns.
public typealias SecondaryEntry = @convention(c) (Int) -> Void

/// The kernel image as the linker laid it out.
public struct KernelImage: Equatable, Sendable {
  /// The first byte of the image (0x200000 on raspi3b).
  public let start: UInt
  /// One past the last byte, page aligned.
  public let end: UInt

  /// The image `[start, end)`.
  /// - Complexity: O(1).
  public init(start: UInt, end: UInt) {
    self.start = start
    self.end = end
  }
}

/// The board's model as its firmware reports it.
public struct BoardModel: Sendable {
  /// The model's name ("Raspberry Pi 3 Model B").
  public let name: StaticString
  /// The board's RAM, all of it (not only what the kernel is given).
  public let memoryBytes: UInt
  /// The firmware's revision code.
  public let revision: UInt32

  /// A model `name` with `memoryBytes` of RAM and revision code `revision`.
  /// - Complexity: O(1).
  public init(name: StaticString, memoryBytes: UInt, revision: UInt32) {
    self.name = name
    self.memoryBytes = memoryBytes
    self.revision = revision
  }
}

/// A device tree blob firmware or a loader left for the kernel: where it lies in
/// physical memory and its bytes (the header's total size), readable as they are.
public struct DeviceTreeBlob {
  /// The blob's physical address: what memInit reserves.
  public let physicalAddress: UInt
  /// The blob's bytes, `totalsize` of them.
  public let bytes: UnsafeRawBufferPointer

  /// The blob `bytes`, found at `physicalAddress`.
  /// - Complexity: O(1).
  public init(physicalAddress: UInt, bytes: UnsafeRawBufferPointer) {
    self.physicalAddress = physicalAddress
    self.bytes = bytes
  }
}

/// The machine under the kernel: console, leaving, the memory sources, and the cores.
/// Every requirement may be called by the boot core only, except where it says so.
public protocol Platform: ConsoleOutput {
  // MARK: Console and leaving

  /// Sets the console up as the hardware needs it; called before the first output.
  func setUpConsole()
  /// Runs `body`, which prints whole lines, so that other cores' lines come before or
  /// after them, never inside. Any core may call it.
  func withConsoleLock(_ body: () -> Void)
  /// Ends the machine (or the run) with `code` as its status.
  func exit(_ code: Int32) -> Never
  /// What the kernel-wide entry points do with bad input once the boot flow installs it
  /// (the kernel: print it and stop). A closure that captures nothing on bare metal:
  /// it is installed before the heap exists.
  var onBadInput: (BadInputReport) -> Void { get }

  // MARK: The banner

  /// The board the image was built for ("raspi3b").
  var boardName: StaticString { get }
  /// The model the firmware reports, or nil when it reports none.
  func boardModel() -> BoardModel?
  /// The privilege level the kernel was entered at (0 least privileged; the
  /// architecture's own numbering).
  var entryLevel: UInt { get }
  /// The privilege level the kernel runs at.
  var runningLevel: UInt { get }
  /// A privilege level's name as the architecture spells it ("EL1", "S-mode").
  func privilegeName(_ level: UInt) -> StaticString

  // MARK: Time

  /// A free-running counter: ticks since some fixed moment.
  var counter: UInt64 { get }
  /// `counter`'s ticks per second (non-zero).
  var counterFrequency: UInt64 { get }

  // MARK: Memory sources

  /// The device tree a loader passed or the firmware placed, or nil.
  func deviceTree() -> DeviceTreeBlob?
  /// RAM the firmware reports outside a device tree (the Pis' mailbox): (base, size), or nil.
  func mailboxMemory() -> (base: UInt, size: UInt)?
  /// RAM only the board revision describes (the Pi 4's above 1 GiB): (base, size), or nil.
  func boardRevisionHighMemory() -> (base: UInt, size: UInt)?
  /// Where the kernel image lies.
  var kernelImage: KernelImage { get }
  /// RAM at or above this physical address is not mapped, and not used.
  var mappedLimit: UInt { get }
  /// Where the board's RAM must end, from the board's own report of its size (the Pis:
  /// the board revision's, their RAM starting at 0), or nil when it reports none. RAM a
  /// device tree claims at or above it is left out, and said.
  func boardRAMEnd() -> UInt?
  /// Whether the firmware names every range it keeps (reservations, `no-map` regions),
  /// so that RAM below the kernel image is free unless reserved; false: that RAM is
  /// taken as firmware's (boards that leave stubs there unsaid).
  var firmwareDescribesItsMemory: Bool { get }
  /// What to add to a physical address to reach it (0 with an identity map).
  var directMapOffset: Int { get }
  /// Zeroes bytes: the fastest way the platform has.
  var zeroFill: ZeroFill { get }

  // MARK: Cores

  /// Cores the platform can run at most, the boot core included.
  var maximumCores: Int { get }
  /// Cores the board has when no device tree lists any (the Pis: their four, from the
  /// spin table; 1 where a tree is the only way to learn of others).
  var coresWithoutTree: Int { get }
  /// Starts the other cores `described` (the device tree's /cpus and /psci; nil: no
  /// readable tree) as the board starts them, each with a stack from `allocateStack`
  /// running `entry`, waits (with a time limit) and returns the cores online, the boot
  /// core included. Reports on the console what it could not start.
  ///
  /// `allocateStack(cpu, exception)` gives a kernel stack (`exception` false: from
  /// vmalloc, with a guard page below, once the kernel map is in use) or an exception
  /// stack (true: from the page frames, usable before the core's MMU is on);
  /// `freeStack` takes either back.
  func startSecondaryCores(
    described: DeviceTreeCores?, entry: SecondaryEntry?, stackBytes: Int, exceptionStackBytes: Int,
    allocateStack: (_ cpu: Int, _ exception: Bool) -> UnsafeMutableRawPointer?,
    freeStack: (_ cpu: Int, _ stack: UnsafeMutableRawPointer, _ exception: Bool) -> Void
  ) -> Int
  /// Whether core `cpu` is online; false for a number out of range. Any core may call it.
  func isCoreOnline(_ cpu: Int) -> Bool
  /// How the package learns the calling core's number (0 ..< `maximumCores`): the boot
  /// flow installs it (`CPU.install`) before anything else runs.
  var cpuNumbering: CPUNumbering { get }

  // MARK: Translation

  /// The barriers and TLB invalidations of this CPU, or nil where no MMU walks the
  /// tables (a hosted fake): then the boot flow builds no kernel map.
  var translationMaintenance: TranslationMaintenance? { get }
  /// The descriptor format of the kernel map's tables, the one this CPU's MMU walks
  /// (Arch defines each architecture's); its `vmallocWindow` is where the kernel map
  /// puts vmalloc areas and kernel stacks.
  var translationFormat: TranslationFormat { get }
  /// Appends the kernel image's regions with the attributes the kernel map gives them:
  /// text read-execute, rodata read-only, data read-write, and any guard page (empty
  /// attributes) left unmapped.
  func kernelImageRegions(into regions: inout KernelMapRegions)
  /// Adds the MMIO the kernel itself drives (its console, firmware mailbox, power
  /// controller), whatever the device tree says.
  func addBoardDevices(to windows: inout DeviceWindows)
  /// Switches every later access of this core, and the cores started afterwards, to the
  /// tables at `root`.
  /// - Precondition: the tables translate the running code, stack and data as before.
  func activateTranslation(root: UInt)
}

extension Platform {
  /// "level 0" ... "level 3" (a platform without names of its own).
  /// - Complexity: O(1).
  public func privilegeName(_ level: UInt) -> StaticString {
    switch level {
    case 0: return "level 0"
    case 1: return "level 1"
    case 2: return "level 2"
    default: return "level 3"
    }
  }

  /// False: RAM below the kernel image is firmware's.
  public var firmwareDescribesItsMemory: Bool { false }

  /// No MMU: no kernel map.
  public var translationMaintenance: TranslationMaintenance? { nil }
  /// The whole image read-write and executable (a platform without sections).
  public func kernelImageRegions(into regions: inout KernelMapRegions) {
    let image = kernelImage
    regions.append(KernelMapRegion(start: image.start, end: image.end, attributes: [.read, .execute, .global], name: "kernel"))
  }
  /// None.
  public func addBoardDevices(to windows: inout DeviceWindows) {}
  /// Nothing to switch.
  public func activateTranslation(root: UInt) {}
}

extension Platform {
  /// Prints "panic: function: reason address" and ends with status 3: the kernel's
  /// answer to a broken invariant or input it cannot boot with.
  /// - Complexity: O(1) plus the output.
  public func panic(_ function: StaticString, _ reason: StaticString, _ address: UInt) -> Never {
    kput("\npanic: ")
    kput(function)
    kput(": ")
    kput(reason)
    kput(" ")
    kputHex(address, digits: 8)
    kput("\n")
    exit(3)
  }

  /// Nanoseconds of the counter since `start` (a `counter` reading), exact to a tick.
  /// - Complexity: O(1).
  public func nanoseconds(since start: UInt64) -> UInt64 {
    let elapsed = counter &- start
    let hz = counterFrequency
    // ticks × 10^9 / hz without overflowing for any realistic interval.
    return (elapsed / hz) * 1_000_000_000 + (elapsed % hz) * 1_000_000_000 / hz
  }

  /// The cores online now, the boot core included.
  /// - Complexity: O(`maximumCores`).
  public var onlineCores: Int {
    var count = 0
    for cpu in 0..<maximumCores where isCoreOnline(cpu) { count += 1 }
    return count
  }
}
