// The part of `Platform` every bare-metal board here shares, whatever its architecture:
// the console through putchar (the UART, or the debugger's capture buffer), exit
// (semihosting, else the firmware's power-off), the counter, the linker's image bounds
// and sections, the per-CPU blocks, the translation maintenance and table switch of
// ArchSupport. Each architecture's boards (AArch64Platform; RISCVVirt) add how
// it finds its device tree, names its privilege levels and cores, and starts cores.
#if os(none)
import ArchSupport
import FlattenedDeviceTree
import KernelPlatform
import KernelSync
import PageFrames
import VirtualMemory

/// How the boot core starts one core (SecondaryCores.swift), as the architecture decides
/// from the core's device tree node.
public enum CoreStartMethod {
  /// Start it with ArchSupport's `arch_cpu_start(cpu, method, releaseAddress)`
  /// (`ARCH_START_...`).
  case start(method: Int32, releaseAddress: UInt64)
  /// It cannot be started: the report line's reason and the value it names (hex).
  case refused(reason: StaticString, value: UInt64)
}

/// A bare-metal board of this package: `Platform` with the shared parts implemented here.
public protocol BareMetalPlatform: Platform {
  /// The cores to number and start, given the tree's description (nil: no readable
  /// tree): the tree's, or the board's own without one; nil (after a report line) when
  /// there are none to start.
  func coresToStart(_ described: DeviceTreeCores?) -> DeviceTreeCores?
  /// How core `cpu` (its node `core` in `cores`) is started; `coresWaitAtEntry`: cores
  /// wait at the kernel's entry for their block (a machine without firmware).
  func startMethod(of core: DeviceTreeCPU, in cores: DeviceTreeCores, coresWaitAtEntry: Bool) -> CoreStartMethod
  /// The core's name for its "cpu N online" line, from what its block recorded.
  func coreName(_ block: arch_cpu) -> StaticString
}

extension BareMetalPlatform {
  /// One byte to putchar (ArchSupport/libc.c: CR LF for `\n`, the debugger's capture).
  /// - Complexity: O(1) plus the wait for room in the UART's FIFO.
  public func write(_ byte: UInt8) { _ = putchar(Int32(byte)) }

  /// The console lock (ConsoleLock.swift).
  /// - Complexity: O(1) plus the wait for other cores plus `body`.
  public func withConsoleLock(_ body: () -> Void) { Arch.withConsoleLock(body) }

  /// Semihosting exit, or the firmware's power-off without semihosting (ArchSupport).
  /// - Complexity: O(1) (plus the stack canary check).
  public func exit(_ code: Int32) -> Never { arch_exit(code) }

  /// Prints the report as a panic line and stops; captures nothing (no heap needed).
  public var onBadInput: (BadInputReport) -> Void {
    { report in Machine.panic(report.function, report.reason, report.address) }
  }

  /// The privilege level the boot code was entered at.
  public var entryLevel: UInt { UInt(arch_boot_el) }
  /// The privilege level the kernel runs at.
  public var runningLevel: UInt { UInt(arch_current_el()) }

  /// The free-running counter ArchSupport reads (`arch_counter`).
  public var counter: UInt64 { arch_counter() }
  /// Its ticks per second.
  public var counterFrequency: UInt64 { arch_counter_frequency() }

  /// `__kernel_start` and `__end`.
  public var kernelImage: KernelImage { KernelImage(start: arch_kernel_start(), end: arch_kernel_end()) }
  /// The board's early identity map ends here (ArchSupport's mmu.c).
  public var mappedLimit: UInt { Board.mappedLimit }
  /// Physical addresses are virtual ones (the identity map).
  public var directMapOffset: Int { 0 }
  /// The architecture's barriers and TLB invalidations (ArchSupport's translation.c).
  public var translationMaintenance: TranslationMaintenance? {
    TranslationMaintenance(
      orderTableWrites: arch_vm_order_table_writes, publish: arch_vm_publish,
      beforeInvalidation: arch_vm_before_invalidation, invalidatePage: arch_vm_invalidate_page,
      invalidateAll: arch_vm_invalidate_all, completeInvalidation: arch_vm_complete_invalidation)
  }

  /// The linker script's page-aligned sections: .text read-execute, .rodata read-only,
  /// .data and .bss read-write, the boot stack's guard page unmapped (cpu 0's), the boot
  /// stack read-write.
  public func kernelImageRegions(into regions: inout KernelMapRegions) {
    regions.append(KernelMapRegion(start: arch_kernel_start(), end: arch_text_end(), attributes: .kernelText, name: ".text"))
    regions.append(KernelMapRegion(start: arch_text_end(), end: arch_rodata_end(), attributes: .kernelReadOnly, name: ".rodata"))
    regions.append(KernelMapRegion(start: arch_rodata_end(), end: arch_stack_guard(), attributes: .kernelData, name: ".data .bss"))
    regions.append(
      KernelMapRegion(start: arch_stack_guard(), end: arch_stack_bottom(), attributes: [], name: "boot stack guard", guardOfCPU: 0))
    regions.append(KernelMapRegion(start: arch_stack_bottom(), end: arch_kernel_end(), attributes: .kernelData, name: "boot stack"))
  }

  /// The board's MMIO the kernel drives (Board.deviceWindows).
  public func addBoardDevices(to windows: inout DeviceWindows) {
    for window in Board.deviceWindows { windows.add(start: UInt64(window.start), end: UInt64(window.end)) }
  }

  /// Switches this core's translation to the tables at `root` (ArchSupport's
  /// translation.c) and records it for cores started later.
  public func activateTranslation(root: UInt) { arch_mmu_switch(root) }

  /// ArchSupport's bzero.
  public var zeroFill: ZeroFill { { pointer, count in bzero(pointer, count) } }

  /// The per-CPU blocks there are (ARCH_MAX_CPUS, 64): the most cores the kernel runs.
  public var maximumCores: Int { Int(ARCH_MAX_CPUS) }
  /// The first word of the block the per-CPU register points at.
  public var cpuNumbering: CPUNumbering { .perCPURegister }

  /// The device tree blob at `candidate` when it is one: 8-byte aligned, inside the
  /// board's RAM window, a header with the FDT magic and a size from 40 bytes to 2 MiB
  /// that ends inside the window; nil otherwise. Reads nothing outside the window.
  /// - Complexity: O(1).
  public func deviceTree(at candidate: UInt) -> DeviceTreeBlob? {
    guard candidate & 7 == 0, candidate >= Board.ramWindow.start, candidate < Board.ramWindow.end - 8,
      let header = UnsafeRawPointer(bitPattern: candidate),
      let size = FlattenedDeviceTree.totalSize(ofHeader: UnsafeRawBufferPointer(start: header, count: 8)),
      size >= FlattenedDeviceTree.headerBytes, size <= 2 << 20, candidate + UInt(size) <= Board.ramWindow.end
    else { return nil }
    return DeviceTreeBlob(physicalAddress: candidate, bytes: UnsafeRawBufferPointer(start: header, count: size))
  }
}

/// The board this image was built for (the toolset's BOARD_... define picks it).
#if BOARD_RISCV64_VIRT
public typealias BoardPlatform = RISCVVirt
#elseif BOARD_VIRT
public typealias BoardPlatform = Virt
#elseif BOARD_RASPI4B
public typealias BoardPlatform = Raspi4B
#else
public typealias BoardPlatform = Raspi3B
#endif

#endif
