// The part of `Platform` every AArch64 board here shares: the console through putchar
// (the UART, or the debugger's capture buffer), semihosting exit, the exception levels,
// the generic timer, the linker's image bounds, the device tree from x0 or the board's
// default address, and the per-CPU blocks. Each board (Virt, Raspi3B, Raspi4B) adds
// what differs: its name and model, firmware memory, console set-up, how cores start.
#if arch(arm64) && os(none)
import ArchSupport
import FlattenedDeviceTree
import KernelPlatform
import KernelSync
import PageFrames
import VirtualMemory

/// An AArch64 board: `Platform` with the shared parts implemented here.
public protocol AArch64Platform: Platform {
  /// The cores to number and start, given the tree's description (nil: no readable
  /// tree): the tree's, or the board's own without one; nil (after a report line) when
  /// there are none to start.
  func coresToStart(_ described: DeviceTreeCores?) -> DeviceTreeCores?
}

extension AArch64Platform {
  /// One byte to putchar (ArchSupport/libc.c: CR LF for `\n`, the debugger's capture).
  /// - Complexity: O(1) plus the wait for room in the UART's FIFO.
  public func write(_ byte: UInt8) { _ = putchar(Int32(byte)) }

  /// The console lock (ConsoleLock.swift).
  /// - Complexity: O(1) plus the wait for other cores plus `body`.
  public func withConsoleLock(_ body: () -> Void) { Arch.withConsoleLock(body) }

  /// Semihosting exit, or power-off without semihosting (ArchSupport/exit.S).
  /// - Complexity: O(1) (plus the stack canary check).
  public func exit(_ code: Int32) -> Never { arch_exit(code) }

  /// Prints the report as a panic line and stops; captures nothing (no heap needed).
  public var onBadInput: (BadInputReport) -> Void {
    { report in Machine.panic(report.function, report.reason, report.address) }
  }

  /// The exception level boot.S was entered at (3, 2 or 1).
  public var entryLevel: UInt { UInt(arch_boot_el) }
  /// The exception level the kernel runs at (1).
  public var runningLevel: UInt { UInt(arch_current_el()) }

  /// The virtual counter (CNTVCT_EL0).
  public var counter: UInt64 { arch_counter() }
  /// CNTFRQ_EL0.
  public var counterFrequency: UInt64 { arch_counter_frequency() }

  /// `__kernel_start` and `__end`.
  public var kernelImage: KernelImage { KernelImage(start: arch_kernel_start(), end: arch_kernel_end()) }
  /// The board's early identity map ends here (mmu.c).
  public var mappedLimit: UInt { Board.mappedLimit }
  /// Physical addresses are virtual ones (the identity map).
  public var directMapOffset: Int { 0 }
  /// The AArch64 barriers and TLB invalidations (ArchSupport/translation.c).
  public var translationMaintenance: TranslationMaintenance? {
    TranslationMaintenance(
      orderTableWrites: arch_vm_order_table_writes, publish: arch_vm_publish,
      beforeInvalidation: arch_vm_before_invalidation, invalidatePage: arch_vm_invalidate_page,
      invalidateAll: arch_vm_invalidate_all, completeInvalidation: arch_vm_complete_invalidation)
  }
  /// ARMv8-A stage-1 descriptors, 4 KiB granule, 48-bit addresses (AArch64/TranslationFormat+AArch64.swift).
  public var translationFormat: TranslationFormat { .armv8Stage1 }

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

  /// TTBR0, TCR and MAIR for the kernel map (ArchSupport/translation.c).
  public func activateTranslation(root: UInt) { arch_mmu_switch(root) }

  /// The assembly bzero.
  public var zeroFill: ZeroFill { { pointer, count in bzero(pointer, count) } }

  /// The per-CPU blocks there are (ARCH_MAX_CPUS, 64): the most cores the kernel runs.
  public var maximumCores: Int { Int(ARCH_MAX_CPUS) }
  /// The first word of the block TPIDR_EL1 points at.
  public var cpuNumbering: CPUNumbering { .perCPURegister }

  /// The device tree blob a loader passed in x0, else the one QEMU places at the board's
  /// default address. Only addresses inside the board's RAM window are read, and only a
  /// header with the FDT magic and a size from 40 bytes to 2 MiB counts. Records /psci's
  /// conduit, if the tree names one, for power-off without semihosting.
  /// - Complexity: O(tree size).
  public func deviceTree() -> DeviceTreeBlob? {
    for candidate in [UInt(arch_boot_x0), Board.defaultDeviceTree] {
      guard candidate & 7 == 0, candidate >= Board.ramWindow.start, candidate < Board.ramWindow.end - 8,
        let header = UnsafeRawPointer(bitPattern: candidate),
        let size = FlattenedDeviceTree.totalSize(ofHeader: UnsafeRawBufferPointer(start: header, count: 8)),
        size >= FlattenedDeviceTree.headerBytes, size <= 2 << 20, candidate + UInt(size) <= Board.ramWindow.end
      else { continue }
      let bytes = UnsafeRawBufferPointer(start: header, count: size)
      let conduit = (try? FlattenedDeviceTree(blob: bytes).cores())?.psci
      arch_set_psci_conduit(conduit == .hvc ? ARCH_START_PSCI_HVC : conduit == .smc ? ARCH_START_PSCI_SMC : 0)
      return DeviceTreeBlob(physicalAddress: candidate, bytes: bytes)
    }
    return nil
  }
}

/// The board this image was built for (the toolset's BOARD_... define picks it).
#if BOARD_VIRT
public typealias BoardPlatform = Virt
#elseif BOARD_RASPI4B
public typealias BoardPlatform = Raspi4B
#else
public typealias BoardPlatform = Raspi3B
#endif

#endif
