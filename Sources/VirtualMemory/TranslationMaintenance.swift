/// The barriers and TLB invalidations an address space issues after it changes its
/// tables, as C functions the platform supplies: in a kernel, the architecture's
/// instructions (Arch gives each format's); `hosted` (tables no MMU walks: host tests
/// and tools) does nothing. The address space counts what it asked for itself
/// (`statistics`), so a test needs no counters of its own here.
///
/// The order an operation uses them in:
/// - a new table page zeroed → `orderTableWrites` → the descriptor that links it;
/// - descriptors cleared or changed → `beforeInvalidation` → `invalidatePage` for each
///   page (or one `invalidateAll`) → `completeInvalidation` → only then are table pages
///   that emptied freed;
/// - new mappings only → `publish`.
public struct TranslationMaintenance: Sendable {
  /// A barrier or whole-TLB operation.
  public typealias Operation = @convention(c) () -> Void
  /// An operation on the page holding a virtual address.
  public typealias PageOperation = @convention(c) (UInt) -> Void

  /// A new table's zeroed contents reach every CPU's table walker before the
  /// descriptor that links it (a store barrier).
  public var orderTableWrites: Operation
  /// New descriptors are seen by this CPU's next access and every other CPU's next
  /// walk.
  public var publish: Operation
  /// Descriptor writes complete before the invalidations that follow.
  public var beforeInvalidation: Operation
  /// Every CPU drops its cached translations of the page holding the address, at
  /// every level (walk caches included).
  public var invalidatePage: PageOperation
  /// Every CPU drops every translation of the kernel's and user mode's it caches.
  public var invalidateAll: Operation
  /// The invalidations have finished on every CPU, and this CPU's next instruction
  /// sees their effect.
  public var completeInvalidation: Operation

  /// Maintenance from six C functions (see each property).
  /// - Complexity: O(1).
  public init(
    orderTableWrites: Operation, publish: Operation, beforeInvalidation: Operation,
    invalidatePage: PageOperation, invalidateAll: Operation, completeInvalidation: Operation
  ) {
    self.orderTableWrites = orderTableWrites
    self.publish = publish
    self.beforeInvalidation = beforeInvalidation
    self.invalidatePage = invalidatePage
    self.invalidateAll = invalidateAll
    self.completeInvalidation = completeInvalidation
  }

  /// For tables no MMU walks: every operation does nothing.
  public static let hosted = TranslationMaintenance(
    orderTableWrites: {}, publish: {}, beforeInvalidation: {}, invalidatePage: { _ in }, invalidateAll: {},
    completeInvalidation: {})
}
