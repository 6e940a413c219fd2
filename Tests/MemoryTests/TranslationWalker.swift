import TranslationFormats
import Testing
import VirtualMemory

/// The formats every address-space test runs over, each read back by its own walk.
enum TestedFormat: String, CaseIterable, Sendable, CustomTestStringConvertible {
  case armv8Stage1
  case sv39

  /// The format the address space is given.
  var format: TranslationFormat {
    switch self {
    case .armv8Stage1: return .armv8Stage1
    case .sv39: return .sv39
    }
  }

  var testDescription: String { rawValue }
}

/// Software table walks written from the architectures' specifications, one for each
/// tested format: `walkARMv8` here, `walkSv39` (Sv39Walker.swift). Both give the same
/// `Translation` and `Fault`, with levels numbered as `TranslationFormat` numbers them
/// (3: 4 KiB pages, 2: 2 MiB, 1: 1 GiB, 0: 512 GiB).
///
/// The ARMv8-A walk follows the Arm ARM's translation pseudo-code
/// (AArch64.TranslationTableWalk, D8 "VMSAv8-64 translation"), for the EL1&0 regime
/// with TTBR0, a 4 KiB granule, T0SZ = 16 (48-bit input) and so a start at level 0;
/// no LPA/LPA2 (48-bit output), hierarchical permissions ignored (APTable, XNTable,
/// PXNTable are not set by the tables under test and are not modelled), SCTLR_EL1.WXN
/// clear, hardware access-flag management off.
///
/// The walks are independent of `VirtualMemory`: they decode every descriptor bit
/// themselves and never call `TranslationFormat`'s helpers or `AddressSpace`'s walk,
/// so a test can hold the tables against them. Memory is read through `read`, a 64-bit
/// load at a physical address.
struct TranslationWalker {
  /// MAIR_EL1 as the kernel programs it for ARMv8-A tables: Attr0 = 0xff (Normal,
  /// inner/outer write-back non-transient, read/write-allocate), Attr1 = 0x04
  /// (Device-nGnRE). A test checks `ARMv8Stage1.mair` against it.
  static let mair: UInt64 = 0x04ff

  /// Why a walk faulted (the fault kinds the walks can meet).
  enum Fault: Error, Equatable {
    /// Input address outside the range the root translates. ARMv8-A: bits 63:48 not
    /// zero (TTBR0). Sv39: bits 63:39 not all equal to bit 38.
    case addressSize
    /// No translation. ARMv8-A: an invalid descriptor (bit 0 clear), a block at level
    /// 0, or a level-3 descriptor with bit 1 clear (reserved). Sv39: V clear, W without
    /// R, reserved bits set, a pointer entry at the last level or with A, D or U set.
    case translation(level: Int)
    /// A leaf the hardware would have to update first. ARMv8-A: AF (bit 10) clear,
    /// with hardware AF off. Sv39: A clear, or D clear in a writable leaf (hardware
    /// A/D updating off).
    case accessFlag(level: Int)
    /// A bad output address. ARMv8-A: bits set above bit 47 (output address size
    /// fault), or a block whose output bits below its span are not zero (RES0). Sv39:
    /// a misaligned superpage (PPN bits below its span not zero).
    case outputAddress(level: Int)
  }

  /// What a successful walk found.
  struct Translation: Equatable {
    /// The physical address the input address translates to.
    var physical: UInt
    /// The level of the leaf: 1 (1 GiB block), 2 (2 MiB block) or 3 (4 KiB page).
    var level: Int
    var kernelReadable: Bool
    var kernelWritable: Bool
    var kernelExecutable: Bool
    var userReadable: Bool
    var userWritable: Bool
    var userExecutable: Bool
    /// Device memory (ARMv8-A: MAIR attribute's high nibble 0000); Normal memory
    /// otherwise. Always false in Sv39, where the physical memory attributes decide.
    var device: Bool
    /// The translation is global, not tagged with an address-space identifier
    /// (ARMv8-A: nG clear; Sv39: G set).
    var global: Bool

    /// Bytes the leaf maps.
    var leafBytes: UInt { 1 << UInt(12 + 9 * (3 - level)) }
  }

  /// Reads the 64-bit word at a physical address.
  let read: (UInt) -> UInt64
  /// Physical address of the root table (TTBR0_EL1.BADDR; satp.PPN × 4096).
  let root: UInt
  /// Which walk.
  let scheme: TestedFormat
  let mair: UInt64

  init(root: UInt, scheme: TestedFormat, mair: UInt64 = TranslationWalker.mair, read: @escaping (UInt) -> UInt64) {
    self.root = root
    self.scheme = scheme
    self.mair = mair
    self.read = read
  }

  /// The walk for input address `va`.
  func walk(_ va: UInt) -> Result<Translation, Fault> {
    switch scheme {
    case .armv8Stage1: return walkARMv8(va)
    case .sv39: return walkSv39(va)
    }
  }

  /// The ARMv8-A stage-1 walk for input address `va`.
  func walkARMv8(_ va: UInt) -> Result<Translation, Fault> {
    // TTBR0 with T0SZ = 16: bits 63:48 must be zero.
    guard va >> 48 == 0 else { return .failure(.addressSize) }
    // Level 0 .. 3 each resolve 9 bits: 47:39, 38:30, 29:21, 20:12.
    var tableBase = root
    var level = 0
    while true {
      let shift = UInt(39 - 9 * level)
      let index = (va >> shift) & 0x1ff
      let descriptor = read(tableBase + index * 8)
      // Bit 0 clear: invalid.
      if descriptor & 1 == 0 { return .failure(.translation(level: level)) }
      let isTableOrPage = descriptor & 2 != 0
      if level < 3 && isTableOrPage {
        // Table descriptor: next-level table address bits 47:12; bits 51:48 must be 0.
        if (descriptor >> 48) & 0xf != 0 { return .failure(.outputAddress(level: level)) }
        tableBase = UInt(descriptor & 0x0000_ffff_ffff_f000)
        level += 1
        continue
      }
      // A block at level 0 does not exist with the 4 KiB granule (no LPA2), and bits
      // 1:0 = 01 at level 3 are reserved: both are translation faults.
      if level == 0 || (level == 3 && !isTableOrPage) { return .failure(.translation(level: level)) }
      // Leaf: block (levels 1, 2) or page (level 3). Output address bits 47:shift;
      // for a block, bits shift-1:12 are RES0, and 51:48 are zero for a 48-bit OA.
      if (descriptor >> 48) & 0xf != 0 { return .failure(.outputAddress(level: level)) }
      let outputMask: UInt64 = 0x0000_ffff_ffff_ffff & ~((1 << UInt64(shift)) - 1)
      let res0Mask: UInt64 = ((1 << UInt64(shift)) - 1) & ~0xfff
      if descriptor & res0Mask != 0 { return .failure(.outputAddress(level: level)) }
      if descriptor & (1 << 10) == 0 { return .failure(.accessFlag(level: level)) }
      let outputBase = UInt(descriptor & outputMask)
      let physical = outputBase | (va & ((1 << shift) - 1))

      // Permissions: AP[2:1] = bits 7:6 (AP[2] read-only, AP[1] EL0 access).
      let ap = (descriptor >> 6) & 3
      let el0Access = ap & 1 != 0
      let readOnly = ap & 2 != 0
      let pxn = descriptor & (1 << 53) != 0
      let uxn = descriptor & (1 << 54) != 0
      let userWritable = el0Access && !readOnly
      // Memory writable at EL0 is never executable at EL1 (AArch64.S1DirectBasePermissions:
      // PXN treated as 1 when AP = 01); WXN is clear.
      let kernelExecutable = !pxn && !userWritable
      // Execute at EL0 is governed by UXN alone (an AP[1] = 0 page with UXN = 0 is
      // EL0 execute-only in Armv8.0).
      let userExecutable = !uxn
      // Memory type: AttrIndx = bits 4:2 selects a MAIR byte; high nibble 0 = Device.
      let attrIndex = (descriptor >> 2) & 7
      let attr = (mair >> (attrIndex * 8)) & 0xff
      let device = attr >> 4 == 0
      let global = descriptor & (1 << 11) == 0
      return .success(
        Translation(
          physical: physical, level: level, kernelReadable: true, kernelWritable: !readOnly,
          kernelExecutable: kernelExecutable, userReadable: el0Access, userWritable: userWritable,
          userExecutable: userExecutable, device: device, global: global))
    }
  }
}

extension TranslationWalker.Translation {
  /// The `MapAttributes` these permissions express, or nil for a combination no
  /// `MapAttributes` value means: a kernel page EL0 may execute, a user page the
  /// kernel may execute, or executable device memory.
  var mapAttributes: MapAttributes? {
    guard kernelReadable else { return nil }
    var attributes: MapAttributes = .read
    if kernelWritable { attributes.insert(.write) }
    if userReadable {
      attributes.insert(.user)
      // A user page: EL0 may write exactly when EL1 may; never executable at EL1.
      guard userWritable == kernelWritable, !kernelExecutable else { return nil }
      if userExecutable { attributes.insert(.execute) }
    } else {
      // A kernel page: EL0 neither reads, writes nor executes it.
      guard !userWritable, !userExecutable else { return nil }
      if kernelExecutable { attributes.insert(.execute) }
    }
    if device {
      guard !kernelExecutable, !userExecutable else { return nil }
      attributes.insert(.device)
    }
    if global { attributes.insert(.global) }
    return attributes
  }
}
