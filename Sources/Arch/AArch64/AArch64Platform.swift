// What every AArch64 board here adds to BareMetalPlatform: the exception levels, the
// device tree from x0 or the board's default address (and /psci's conduit for
// power-off), how a core is started (PSCI CPU_ON, a spin table, the holding pen) and its
// name from MIDR_EL1. Each board (Virt, Raspi3B, Raspi4B) adds what differs: its name
// and model, firmware memory, console set-up, which cores it has.
#if arch(arm64) && os(none)
import ArchSupport
import FlattenedDeviceTree
import KernelPlatform
import TranslationFormats
import KernelSync
import PageFrames
import VirtualMemory

/// MIDR_EL1: the primary part number field and the parts the boards use.
private let midrPartShift: UInt64 = 4
private let midrPartMask: UInt64 = 0xFFF
private let partCortexA53: UInt64 = 0xD03
private let partCortexA72: UInt64 = 0xD08

/// An AArch64 board.
public protocol AArch64Platform: BareMetalPlatform {}

extension AArch64Platform {
  /// ARMv8-A stage-1 descriptors, 4 KiB granule, 48-bit addresses (TranslationFormat+AArch64.swift).
  public var translationFormat: TranslationFormat { .armv8Stage1 }

  /// "EL0" ... "EL3".
  /// - Complexity: O(1).
  public func privilegeName(_ level: UInt) -> StaticString {
    switch level {
    case 0: return "EL0"
    case 1: return "EL1"
    case 2: return "EL2"
    default: return "EL3"
    }
  }

  /// The device tree blob a loader passed in x0, else the one QEMU places at the board's
  /// default address (`deviceTree(at:)` says which count). Records /psci's conduit, if
  /// the tree names one, for power-off without semihosting.
  /// - Complexity: O(tree size).
  public func deviceTree() -> DeviceTreeBlob? {
    for candidate in [UInt(arch_boot_x0), Board.defaultDeviceTree] {
      guard let blob = deviceTree(at: candidate) else { continue }
      let conduit = (try? FlattenedDeviceTree(blob: blob.bytes).cores())?.psci
      arch_set_psci_conduit(conduit == .hvc ? ARCH_START_PSCI_HVC : conduit == .smc ? ARCH_START_PSCI_SMC : 0)
      return blob
    }
    return nil
  }

  /// As its node and /psci say: PSCI CPU_ON over /psci's conduit with its MPIDR as the
  /// target, or the spin table at its cpu-release-addr (8-byte aligned, below
  /// `mappedLimit` and mapped writable); a core the tree names no way for is released
  /// from boot.S's holding pen when cores wait there, else refused.
  /// - Complexity: O(levels) (the release address's translation).
  public func startMethod(of core: DeviceTreeCPU, in cores: DeviceTreeCores, coresWaitAtEntry: Bool) -> CoreStartMethod {
    switch cores.start(of: core) {
    case .psci(let conduit):
      return .start(method: conduit == .hvc ? ARCH_START_PSCI_HVC : ARCH_START_PSCI_SMC, releaseAddress: 0)
    case .spinTable(let address):
      // The word is written through the identity map: it must lie below its end and,
      // once the kernel map is in use, be mapped writable there (not in a no-map
      // reservation, say).
      let writable = kernelAddressSpace.map { space in
        space.translate(UInt(truncatingIfNeeded: address))?.attributes.contains(.write) ?? false
      } ?? true
      guard address != 0, address & 7 == 0, address < UInt64(mappedLimit), writable else {
        return .refused(reason: "no way to start it: cpu-release-addr not an aligned mapped word", value: address)
      }
      return .start(method: ARCH_START_SPIN_TABLE, releaseAddress: address)
    case .none:
      guard coresWaitAtEntry else {
        return .refused(reason: "no way to start it: no /psci conduit, no spin-table, no core waiting at the entry; MPIDR",
                        value: core.mpidr)
      }
      return .start(method: ARCH_START_HOLDING_PEN, releaseAddress: 0)
    }
  }

  /// The core's name from its MIDR_EL1.
  /// - Complexity: O(1).
  public func coreName(_ block: arch_cpu) -> StaticString {
    switch (block.midr >> midrPartShift) & midrPartMask {
    case partCortexA53: return "Cortex-A53"
    case partCortexA72: return "Cortex-A72"
    default: return "unknown core"
    }
  }
}

#endif
