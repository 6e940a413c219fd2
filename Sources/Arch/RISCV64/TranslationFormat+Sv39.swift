// The RISC-V 64 kernel's translation-table format: Sv39 page-table entries (the
// privileged specification, "Sv39: Page-Based 39-bit Virtual-Memory System"). Not
// limited to RISC-V builds: host tests build tables in this format and read them back
// with a walker of their own.
import VirtualMemory

/// The bits of an Sv39 page-table entry: three levels of 512 entries, 4 KiB pages,
/// 2 MiB megapages and 1 GiB gigapages; no Svnapot, Svpbmt or Svadu.
public enum Sv39 {
  /// V, bit 0: the entry is valid.
  public static let valid: UInt64 = 1 << 0
  /// R, bit 1: readable.
  public static let read: UInt64 = 1 << 1
  /// W, bit 2: writable (reserved without R).
  public static let write: UInt64 = 1 << 2
  /// X, bit 3: executable.
  public static let execute: UInt64 = 1 << 3
  /// U, bit 4: user mode may use the page (supervisor mode then never executes it).
  public static let user: UInt64 = 1 << 4
  /// G, bit 5: a global mapping (in every address space).
  public static let global: UInt64 = 1 << 5
  /// A, bit 6: accessed (always set, so hardware never needs to set it).
  public static let accessed: UInt64 = 1 << 6
  /// D, bit 7: dirty (always set in a leaf, for the same reason).
  public static let dirty: UInt64 = 1 << 7
  /// The physical page number's place: bits 53:10.
  public static let pageNumberShift: UInt64 = 10
  /// PPN[2], PPN[1] and PPN[0]: bits 53:10 (44 bits, a 56-bit physical address).
  public static let pageNumberMask: UInt64 = ((1 << 44) - 1) << 10
  /// The kinds (bits V, R, W, X) that are a leaf: valid, readable or executable, and
  /// not writable without being readable.
  public static let leafKinds: UInt64 =
    1 << (valid | read) | 1 << (valid | read | write) | 1 << (valid | execute) | 1 << (valid | read | execute)
    | 1 << (valid | read | write | execute)
}

extension TranslationFormat {
  /// Sv39 page tables for satp's root (mode 8): a three-level walk whose root table is
  /// level 1 (VPN[2], address bits 38:30), 56-bit physical addresses. Only the lower
  /// half of the address space is used: virtual addresses below 2^38, so bit 38 and
  /// every bit above it are zero.
  ///
  /// - A table entry is V alone with the next table's page number. A leaf has V, R, A
  ///   and D, and W with `.write`, X with `.execute` (kernel or user: a U page is never
  ///   executable in supervisor mode), U with `.user`, G with `.global`. Without Svpbmt
  ///   there are no memory-type bits: the physical memory attributes give MMIO its type,
  ///   so `.device` is not recorded in the entry (`translate` does not report it) and
  ///   no change needs break-before-make.
  /// - vmalloc and kernel stacks: 64 GiB from 128 GiB, above the RAM and MMIO the
  ///   identity part of the kernel map covers (RAM from 2 GiB on QEMU's virt board) and
  ///   below the top quarter of the half, left for what the kernel puts above it (its
  ///   guarded pool).
  ///
  /// The maintenance that goes with it: `fence w, w` before a new table is linked,
  /// `sfence.vma` to publish, and `sfence.vma` of one page or of everything on every hart
  /// (a remote fence through the SBI) for the invalidations.
  public static let sv39 = TranslationFormat(
    firstLevel: 1, addressLimit: 1 << 38, outputLimit: 1 << 56, vmallocWindow: (128 << 30)..<(192 << 30),
    valid: Sv39.valid, kindMask: Sv39.valid | Sv39.read | Sv39.write | Sv39.execute, tableBits: Sv39.valid,
    blockKinds: Sv39.leafKinds, pageKinds: Sv39.leafKinds, pageBit: 0,
    leafBits: Sv39.valid | Sv39.read | Sv39.accessed | Sv39.dirty,
    addressMask: Sv39.pageNumberMask, addressShift: 12 - Sv39.pageNumberShift,
    write: AttributeBits(whenPresent: Sv39.write),
    kernelExecute: AttributeBits(whenPresent: Sv39.execute),
    userExecute: AttributeBits(whenPresent: Sv39.execute),
    user: AttributeBits(whenPresent: Sv39.user),
    global: AttributeBits(whenPresent: Sv39.global),
    device: .none, memoryTypeMask: 0)
}
