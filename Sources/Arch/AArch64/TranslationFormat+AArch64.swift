// The AArch64 kernel's translation-table format: ARMv8-A stage-1 descriptors (VMSAv8-64)
// for the 4 KiB granule and 48-bit addresses. Not limited to bare-metal AArch64 builds:
// host tests build tables in this format and read them back with a walker of their own.
import VirtualMemory

/// The bits of an ARMv8-A stage-1 descriptor with the 4 KiB granule and 48-bit virtual
/// and output addresses (Arm ARM D8.3): four levels (TCR_EL1.T0SZ = 16), a table's
/// entries at levels 0-2 with bits 1:0 = 11, blocks at levels 1 and 2 with 01, pages at
/// level 3 with 11.
public enum ARMv8Stage1 {
  /// Bit 0: the descriptor is valid.
  public static let valid: UInt64 = 1 << 0
  /// Bit 1: a table (levels 0-2) or a page (level 3); clear in a block.
  public static let tableOrPage: UInt64 = 1 << 1
  /// AttrIndx, bits 4:2: the MAIR_EL1 byte the memory type comes from.
  public static let attributeIndexShift: UInt64 = 2
  /// MAIR_EL1 byte 0: Normal memory, inner and outer write-back, read/write-allocate.
  public static let normalIndex: UInt64 = 0
  /// MAIR_EL1 byte 1: Device-nGnRE.
  public static let deviceIndex: UInt64 = 1
  /// The MAIR_EL1 value the indices above assume (ArchSupport's mmu.c programs it).
  public static let mair: UInt64 = 0xff | 0x04 << 8
  /// AP[1], bit 6: EL0 may access.
  public static let user: UInt64 = 1 << 6
  /// AP[2], bit 7: read-only.
  public static let readOnly: UInt64 = 1 << 7
  /// SH, bits 9:8: inner shareable.
  public static let innerShareable: UInt64 = 3 << 8
  /// AF, bit 10: accessed (set, so no access-flag fault is taken).
  public static let accessFlag: UInt64 = 1 << 10
  /// nG, bit 11: not global (tagged with the ASID).
  public static let notGlobal: UInt64 = 1 << 11
  /// PXN, bit 53: never executable at EL1.
  public static let privilegedExecuteNever: UInt64 = 1 << 53
  /// UXN, bit 54: never executable at EL0.
  public static let userExecuteNever: UInt64 = 1 << 54
  /// Output address, bits 47:12, in place.
  public static let addressMask: UInt64 = 0x0000_ffff_ffff_f000
}

extension TranslationFormat {
  /// ARMv8-A stage-1 tables for TTBR0_EL1: 4 KiB granule, 48-bit virtual and physical
  /// addresses, a four-level walk from level 0.
  ///
  /// - A leaf has AF set, and AttrIndx 0 (Normal write-back, inner shareable) or 1
  ///   (Device-nGnRE) by `.device`; AP[2] (read-only) without `.write`; AP[1] with
  ///   `.user`; nG without `.global`. PXN is set unless a kernel page executes, UXN
  ///   unless a user page does, so an executable user page is never executable at EL1.
  /// - A change of AttrIndx or SH is break-before-make (Arm ARM D8.16.1).
  /// - vmalloc and kernel stacks: 1 TiB from 64 TiB, far above any RAM or MMIO the
  ///   identity part of the kernel map covers.
  ///
  /// The platform's `TranslationMaintenance` goes with it: DMB ISHST before a new table
  /// is linked, DSB ISH + ISB to publish, DSB ISHST before `TLBI VAE1IS` (per page) or
  /// `TLBI VMALLE1IS` (all), DSB ISH + ISB after them (ArchSupport's translation.c).
  public static let armv8Stage1 = TranslationFormat(
    firstLevel: 0, addressLimit: 1 << 48, outputLimit: 1 << 48, vmallocWindow: (1 << 46)..<((1 << 46) + (1 << 40)),
    valid: ARMv8Stage1.valid, kindMask: 3, tableBits: ARMv8Stage1.valid | ARMv8Stage1.tableOrPage,
    blockKinds: 1 << ARMv8Stage1.valid, pageKinds: 1 << (ARMv8Stage1.valid | ARMv8Stage1.tableOrPage),
    pageBit: ARMv8Stage1.tableOrPage, leafBits: ARMv8Stage1.valid | ARMv8Stage1.accessFlag,
    addressMask: ARMv8Stage1.addressMask, addressShift: 0,
    write: AttributeBits(whenAbsent: ARMv8Stage1.readOnly),
    kernelExecute: AttributeBits(whenAbsent: ARMv8Stage1.privilegedExecuteNever),
    userExecute: AttributeBits(whenAbsent: ARMv8Stage1.userExecuteNever),
    user: AttributeBits(whenPresent: ARMv8Stage1.user),
    global: AttributeBits(whenAbsent: ARMv8Stage1.notGlobal),
    device: AttributeBits(
      whenPresent: ARMv8Stage1.deviceIndex << ARMv8Stage1.attributeIndexShift,
      whenAbsent: ARMv8Stage1.normalIndex << ARMv8Stage1.attributeIndexShift | ARMv8Stage1.innerShareable),
    memoryTypeMask: 7 << ARMv8Stage1.attributeIndexShift | ARMv8Stage1.innerShareable)
}
