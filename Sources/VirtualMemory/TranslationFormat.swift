/// How one radix-tree translation-table format encodes its descriptors: 512 eight-byte
/// entries a table, 4 KiB pages, and leaves of 4 KiB, 2 MiB and 1 GiB. `AddressSpace`
/// builds, walks and changes its tables through one of these values only, so the same
/// code serves every architecture whose format fits; the formats themselves are
/// defined with the architecture's code (Arch).
///
/// Levels are numbered by what one entry maps, the same in every format: level 3 maps
/// 4 KiB pages, level 2 2 MiB, level 1 1 GiB, level 0 512 GiB. A walk starts at
/// `firstLevel` (0 for a four-level walk of 48-bit addresses, 1 for a three-level walk
/// of 39-bit ones, whose root table is indexed by address bits 38:30). A leaf may stand
/// at levels 1 to 3; level 0 holds tables only.
///
/// Each attribute of a leaf is a pair of masks (`AttributeBits`): the bits a leaf has
/// when it grants the attribute and the bits it has when it does not. Every method is
/// O(1) and inlined: the address space's fast paths call them on each entry.
public struct TranslationFormat: Equatable, Sendable {
  /// The bits a leaf has for one attribute: `whenPresent` when it grants it,
  /// `whenAbsent` when it does not. Both 0: the format cannot express the attribute,
  /// and a leaf never reports it.
  public struct AttributeBits: Equatable, Sendable {
    /// Set in a leaf that grants the attribute.
    public let whenPresent: UInt64
    /// Set in a leaf that does not.
    public let whenAbsent: UInt64

    /// The pair `whenPresent`, `whenAbsent`.
    /// - Complexity: O(1).
    public init(whenPresent: UInt64 = 0, whenAbsent: UInt64 = 0) {
      self.whenPresent = whenPresent
      self.whenAbsent = whenAbsent
    }

    /// Neither mask: the format has no bits for the attribute.
    public static let none = AttributeBits()

    /// Whether the format can express the attribute at all.
    /// - Complexity: O(1).
    @inline(__always)
    public var isExpressed: Bool { whenPresent | whenAbsent != 0 }

    /// The bits for the attribute present (`true`) or absent.
    /// - Complexity: O(1).
    @inline(__always)
    public func bits(_ present: Bool) -> UInt64 { present ? whenPresent : whenAbsent }

    /// Whether the leaf `bits` grants the attribute: its bits of both masks are those
    /// of `whenPresent` (never, for an attribute the format does not express).
    /// - Complexity: O(1).
    @inline(__always)
    public func isPresent(in bits: UInt64) -> Bool { isExpressed && bits & (whenPresent | whenAbsent) == whenPresent }
  }

  /// Entries per table.
  public static let entries = 512
  /// Levels there are (0 to 3); a format's walk uses those from `firstLevel`.
  public static let levels = 4

  /// Bytes one entry at `level` maps: 512 GiB, 1 GiB, 2 MiB, 4 KiB.
  /// - Complexity: O(1).
  @inline(__always)
  public static func span(level: Int) -> UInt { 1 &<< UInt(truncatingIfNeeded: 39 &- 9 &* level) }

  /// The index of `address` in a table at `level`: its nine address bits above
  /// `span(level)`'s.
  /// - Complexity: O(1).
  @inline(__always)
  public static func index(_ address: UInt, level: Int) -> Int {
    Int(truncatingIfNeeded: (address &>> UInt(truncatingIfNeeded: 39 &- 9 &* level)) & 511)
  }

  // MARK: The walk

  /// The level of the root table: 0 for a four-level walk, 1 for a three-level one.
  public let firstLevel: Int
  /// One past the highest virtual address the tables translate: they cover
  /// `[0, addressLimit)`.
  public let addressLimit: UInt
  /// One past the highest physical address a descriptor can hold.
  public let outputLimit: UInt
  /// Where the kernel map puts vmalloc areas and kernel stacks: inside
  /// `[0, addressLimit)`, above any RAM or MMIO the identity part of the map covers,
  /// with room above it (the kernel's guarded pool starts at its end).
  public let vmallocWindow: Range<UInt>

  // MARK: Descriptor kinds

  /// The valid bit: an entry without it is empty.
  public let valid: UInt64
  /// The low bits that tell a table from a leaf: `kindMask`'s bits of an entry are its
  /// kind (a value below 64).
  public let kindMask: UInt64
  /// The bits of a table descriptor besides its address; its kind is theirs.
  public let tableBits: UInt64
  /// The kinds that are a leaf at levels 1 and 2: bit `k` set for kind `k`.
  public let blockKinds: UInt64
  /// The kinds that are a leaf at level 3: bit `k` set for kind `k`.
  public let pageKinds: UInt64
  /// The bit a leaf has at level 3 and not above (0 in a format whose leaves look the
  /// same at every level).
  public let pageBit: UInt64
  /// The bits every leaf has, whatever its attributes (the valid bit among them).
  public let leafBits: UInt64

  // MARK: Output address

  /// Where the output (or next-table) address lies in a descriptor, in place.
  public let addressMask: UInt64
  /// How far right a physical address moves into `addressMask`: 0 for an address kept
  /// in place, more for a page number stored lower (a page number at bit 10: 2).
  public let addressShift: UInt64

  // MARK: Attributes

  /// Stores allowed.
  public let write: AttributeBits
  /// Instruction fetches allowed in kernel mode (a kernel page with `.execute`).
  public let kernelExecute: AttributeBits
  /// Instruction fetches allowed in user mode (a `.user` page with `.execute`).
  public let userExecute: AttributeBits
  /// User mode may use the page.
  public let user: AttributeBits
  /// The translation is shared by every address space.
  public let global: AttributeBits
  /// Device memory (uncached, accesses in order) rather than normal memory.
  public let device: AttributeBits
  /// The bits of a leaf that give its memory type: changing them needs
  /// break-before-make, while permission bits may change in place (0: no such bits).
  public let memoryTypeMask: UInt64

  /// A format from its parts (see each property).
  /// - Precondition: `kindMask` below 64 and `tableBits`'s kind inside it; leaves at
  ///   levels 1 to 3 only; `addressMask`'s bits clear of every other mask.
  /// - Complexity: O(1).
  public init(
    firstLevel: Int, addressLimit: UInt, outputLimit: UInt, vmallocWindow: Range<UInt>,
    valid: UInt64, kindMask: UInt64, tableBits: UInt64, blockKinds: UInt64, pageKinds: UInt64, pageBit: UInt64,
    leafBits: UInt64, addressMask: UInt64, addressShift: UInt64,
    write: AttributeBits, kernelExecute: AttributeBits, userExecute: AttributeBits, user: AttributeBits,
    global: AttributeBits, device: AttributeBits, memoryTypeMask: UInt64
  ) {
    self.firstLevel = firstLevel
    self.addressLimit = addressLimit
    self.outputLimit = outputLimit
    self.vmallocWindow = vmallocWindow
    self.valid = valid
    self.kindMask = kindMask
    self.tableBits = tableBits
    self.blockKinds = blockKinds
    self.pageKinds = pageKinds
    self.pageBit = pageBit
    self.leafBits = leafBits
    self.addressMask = addressMask
    self.addressShift = addressShift
    self.write = write
    self.kernelExecute = kernelExecute
    self.userExecute = userExecute
    self.user = user
    self.global = global
    self.device = device
    self.memoryTypeMask = memoryTypeMask
  }

  // MARK: Encoding

  /// `physical` (page aligned) as a descriptor holds it.
  /// - Complexity: O(1).
  @inline(__always)
  public func encodedAddress(_ physical: UInt) -> UInt64 { UInt64(physical) &>> addressShift & addressMask }

  /// The output (or next-table) address of a valid descriptor.
  /// - Complexity: O(1).
  @inline(__always)
  public func address(_ bits: UInt64) -> UInt { UInt(truncatingIfNeeded: (bits & addressMask) &<< addressShift) }

  /// A table descriptor pointing at the table page at `physical`.
  /// - Complexity: O(1).
  @inline(__always)
  public func table(_ physical: UInt) -> UInt64 { encodedAddress(physical) | tableBits }

  /// A leaf at `level` (1 to 3) for `physical` with `attributes`.
  /// - Precondition: `attributes.isValid`, `physical` aligned to `span(level)`.
  /// - Complexity: O(1).
  @inline(__always)
  public func leaf(_ physical: UInt, _ attributes: MapAttributes, level: Int) -> UInt64 {
    var bits = encodedAddress(physical) | leafBits
    if level == 3 { bits |= pageBit }
    let isUser = attributes.contains(.user)
    let executes = attributes.contains(.execute)
    bits |= write.bits(attributes.contains(.write))
    bits |= kernelExecute.bits(executes && !isUser)
    bits |= userExecute.bits(executes && isUser)
    bits |= user.bits(isUser)
    bits |= global.bits(attributes.contains(.global))
    bits |= device.bits(attributes.contains(.device))
    return bits
  }

  /// The attributes a leaf grants (the inverse of `leaf` for what the format
  /// expresses).
  /// - Complexity: O(1).
  @inline(__always)
  public func attributes(ofLeaf bits: UInt64) -> MapAttributes {
    var attributes: MapAttributes = .read
    if write.isPresent(in: bits) { attributes.insert(.write) }
    if user.isPresent(in: bits) {
      attributes.insert(.user)
      if userExecute.isPresent(in: bits) { attributes.insert(.execute) }
    } else if kernelExecute.isPresent(in: bits) {
      attributes.insert(.execute)
    }
    if device.isPresent(in: bits) { attributes.insert(.device) }
    if global.isPresent(in: bits) { attributes.insert(.global) }
    return attributes
  }

  /// What `attributes(ofLeaf:)` gives back for a leaf made with `attributes`: those
  /// less the ones the format has no bits for (a format without memory types keeps no
  /// `.device`).
  /// - Complexity: O(1).
  public func expressible(_ attributes: MapAttributes) -> MapAttributes {
    var kept = attributes
    if !write.isExpressed { kept.remove(.write) }
    if !user.isExpressed { kept.remove(.user) }
    if !global.isExpressed { kept.remove(.global) }
    if !device.isExpressed { kept.remove(.device) }
    let executes = kept.contains(.user) ? userExecute : kernelExecute
    if !executes.isExpressed { kept.remove(.execute) }
    return kept
  }

  // MARK: Kinds

  /// Whether `bits` has the valid bit.
  /// - Complexity: O(1).
  @inline(__always)
  public func isValid(_ bits: UInt64) -> Bool { bits & valid != 0 }

  /// Whether `bits` at `level` points at a next-level table (not a leaf).
  /// - Complexity: O(1).
  @inline(__always)
  public func isTable(_ bits: UInt64, level: Int) -> Bool { level < 3 && bits & kindMask == tableBits }

  /// Whether `bits` at `level` is a valid leaf: a block at levels 1 and 2, a page at
  /// level 3.
  /// - Complexity: O(1).
  @inline(__always)
  public func isLeaf(_ bits: UInt64, level: Int) -> Bool {
    let kind = bits & kindMask
    return level == 3 ? pageKinds &>> kind & 1 != 0 : (level >= 1 && blockKinds &>> kind & 1 != 0)
  }
}
