/// Return addresses of one recorded call, innermost first (`GuardedSlot.stackDepth`).
typealias StackFrames = InlineArray<16, UInt>

/// The record of one slot of a `GuardedPool`: where its object is, what it is, and the
/// stacks of the calls that allocated and freed it (kept after the free, for
/// use-after-free reports). Written under the pool lock; read without it by fault
/// reports.
struct GuardedSlot {
  /// Stack frames recorded per call: `StackFrames`' count.
  static let stackDepth = 16

  static let stateUnused: UInt8 = 0
  static let stateAllocated: UInt8 = 1
  static let stateFreed: UInt8 = 2

  /// `stateUnused`, `stateAllocated` or `stateFreed`.
  var state: UInt8 = GuardedSlot.stateUnused
  /// The object's first byte (0 before the first allocation).
  var object: UInt = 0
  /// Bytes asked for.
  var size: Int = 0
  /// 0 for kmalloc; an `ObjectCache`'s serial for its objects.
  var cache: UInt = 0
  var allocatingCPU: Int = 0
  var freeingCPU: Int = 0
  var allocationDepth: Int = 0
  var freeDepth: Int = 0
  var allocationStack = StackFrames(repeating: 0)
  var freeStack = StackFrames(repeating: 0)
}

/// The state behind the pool lock: the ring of slots waiting for reuse and the counts.
/// Slots are taken from the ring's head and go back to its tail when freed, so a freed
/// slot waits for every other slot to be used before it is reused (the quarantine).
struct GuardedPoolState {
  /// Index in the ring of the next slot to hand out.
  var ringHead = 0
  /// Slots in the ring.
  var ringCount = 0
  /// Objects handed out and not freed.
  var live = 0
  /// Allocations the pool served.
  var sampled = 0
  /// Sampled allocations the pool could not serve (no slot, or the page could not be
  /// made accessible): they went to the heap.
  var missed = 0
}
