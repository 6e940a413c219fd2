/// What a mapping allows and what kind of memory it is: the portable form of a leaf
/// descriptor's permission and memory-type bits, which a `TranslationFormat` encodes.
///
/// Every mapping is readable (not every format has write-only or execute-only pages),
/// so `.read` is required. `.write` together with `.execute` is refused (W^X). `.user`
/// makes the page reachable from user mode; an executable user page is never
/// executable by the kernel. `.device` maps MMIO as device memory (uncached, accesses in
/// order) where the format has memory types, otherwise the page is normal write-back
/// memory. `.global` pages are shared by every address space; others belong to the
/// address space's identifier.
public struct MapAttributes: OptionSet, Hashable, Sendable {
  /// The set's bits: `read` 1, `write` 2, `execute` 4, `user` 8, `device` 16,
  /// `global` 32.
  public let rawValue: UInt8

  /// The set with the bits of `rawValue` (bits above `global` make it invalid).
  /// - Complexity: O(1).
  public init(rawValue: UInt8) { self.rawValue = rawValue }

  /// Loads are allowed (required).
  public static let read = MapAttributes(rawValue: 1 << 0)
  /// Stores are allowed.
  public static let write = MapAttributes(rawValue: 1 << 1)
  /// Instruction fetches are allowed (the kernel's, or user mode's with `.user`).
  public static let execute = MapAttributes(rawValue: 1 << 2)
  /// User mode may use the page.
  public static let user = MapAttributes(rawValue: 1 << 3)
  /// Device memory (MMIO): never executable, never cached.
  public static let device = MapAttributes(rawValue: 1 << 4)
  /// The translation is shared by every address space (kernel mappings).
  public static let global = MapAttributes(rawValue: 1 << 5)

  /// Kernel text: read and execute.
  public static let kernelText: MapAttributes = [.read, .execute, .global]
  /// Kernel read-only data: read, never execute.
  public static let kernelReadOnly: MapAttributes = [.read, .global]
  /// Kernel data, stacks, heap and the direct map: read and write, never execute.
  public static let kernelData: MapAttributes = [.read, .write, .global]
  /// Kernel MMIO: device memory, read and write, never execute.
  public static let kernelDevice: MapAttributes = [.read, .write, .device, .global]

  /// The permissions as the boot log prints them: `r-x`, `r--`, `rw-`, or
  /// `rw- device` for MMIO; `---` for the empty set.
  /// - Complexity: O(1).
  public var permissions: StaticString {
    if isEmpty { return "---" }
    if contains(.device) { return "rw- device" }
    if contains(.execute) { return "r-x" }
    return contains(.write) ? "rw-" : "r--"
  }

  /// Whether the set can be expressed and respects W^X: readable, not writable and
  /// executable at once, and not device memory that executes.
  /// - Complexity: O(1).
  public var isValid: Bool {
    contains(.read) && !contains([.write, .execute]) && !(contains(.device) && contains(.execute))
      && rawValue & ~0x3f == 0
  }
}
