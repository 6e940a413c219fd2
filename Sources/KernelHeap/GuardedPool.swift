import KernelSync
import PageFrames

/// A sampling memory-error detector: Linux's KFENCE, GWP-ASan in Scudo and Chrome. One
/// allocation in `interval` is served from a pool of guarded slots instead of the heap
/// (a `Heap` it is attached to counts in each of its caches; `shouldSample` counts per
/// CPU slot for other callers):
///
///     base ─► | guard | slot 0 | guard | slot 1 | guard | ... | slot n-1 | guard |
///
/// Each slot is one page between two pages that are never accessible. Even slots place
/// the object flush against the page's end (an overflow faults at its first byte past
/// the aligned end), odd ones at its start (an underflow faults). The rest of the page
/// holds canary bytes, checked when the object is freed. A freed slot's page is made
/// inaccessible, so a use after free faults, and it goes to the tail of the FIFO of
/// slots: it is reused only after every other slot. The platform's fault handler asks
/// `describeFault` what a fault in the pool was and prints the report, with the stacks
/// of the object's allocation and free.
///
/// The pool's memory (the control block and the address range) comes from the platform,
/// which also makes pages accessible (`GuardedPoolHooks`). A handle: copies share one
/// pool.
public struct GuardedPool {
  /// The control block: the lock and state, the per-CPU countdowns, the ring, the slots.
  let control: UnsafeMutableRawPointer
  /// The first guard page.
  public let base: UInt
  /// Slots in the pool.
  public let slotCount: Int
  /// One allocation in this many is sampled (at least 1).
  public let interval: Int
  let cpuSlotMask: Int
  let hooks: GuardedPoolHooks

  /// The default number of slots, as Linux's KFENCE (255 objects in 2 MiB).
  public static let defaultSlots = 255
  /// The default sampling interval: one allocation in this many per CPU.
  public static let defaultInterval = 65536
  /// Most slots a pool may have.
  public static let maximumSlots = 1 << 15
  /// The byte that fills a slot page around its object, xor the low three address bits.
  static let canary: UInt8 = 0xaa

  static var countdownsOffset: Int { roundUp(SpinLocked<GuardedPoolState>.byteCount, 64) }
  static func ringOffset(cpuSlots: Int) -> Int { countdownsOffset + cpuSlots * 64 }
  static func slotsOffset(slots: Int, cpuSlots: Int) -> Int {
    roundUp(ringOffset(cpuSlots: cpuSlots) + slots * MemoryLayout<UInt16>.stride, 64)
  }
  static func roundUp(_ value: Int, _ alignment: Int) -> Int { (value + alignment - 1) & ~(alignment - 1) }

  /// Bytes of address space a pool of `slots` slots spans: a page per slot and a guard
  /// page on each side of every slot.
  /// - Complexity: O(1).
  public static func rangeBytes(slots: Int) -> Int { (2 * slots + 1) * Page.size }

  /// Bytes the control block of a pool of `slots` slots takes, for `cpuSlots` CPU slots.
  /// - Complexity: O(1).
  public static func controlBytes(slots: Int, cpuSlots: Int) -> Int {
    slotsOffset(slots: slots, cpuSlots: cpuSlots) + slots * MemoryLayout<GuardedSlot>.stride
  }

  /// Sets a pool up: `rangeBytes(slots:)` bytes of address space from `base`, every page
  /// of it inaccessible now, and `controlBytes` bytes of control block.
  ///
  /// - Parameters:
  ///   - base: page aligned; the pages there must be inaccessible, and `hooks` must be
  ///     able to make each slot page accessible.
  ///   - slots: 1 ... `maximumSlots`.
  ///   - interval: sample one allocation in this many; at least 1. A heap the pool is
  ///     attached to counts in each of its caches; `shouldSample` counts per CPU slot.
  ///   - cpuSlots: a power of two: CPU `n` counts in `shouldSample`'s countdown
  ///     `n % cpuSlots`.
  ///   - control: 64-byte aligned, `controlBytes(slots:cpuSlots:)` bytes.
  ///   - hooks: the platform's page protection, stack capture, report output and end.
  /// - Returns: nil when a parameter is out of range (nothing written).
  /// - Complexity: O(slots).
  public init?(
    base: UInt, slots: Int, interval: Int, cpuSlots: Int, control: UnsafeMutableRawPointer, hooks: GuardedPoolHooks
  ) {
    guard base & UInt(Page.size - 1) == 0, slots >= 1, slots <= GuardedPool.maximumSlots, interval >= 1,
      cpuSlots >= 1, cpuSlots & (cpuSlots - 1) == 0, UInt(bitPattern: control) & 63 == 0,
      base <= UInt.max - UInt(GuardedPool.rangeBytes(slots: slots))
    else { return nil }
    self.control = control
    self.base = base
    slotCount = slots
    self.interval = interval
    cpuSlotMask = cpuSlots - 1
    self.hooks = hooks
    _ = SpinLocked(initializing: control, to: GuardedPoolState(ringCount: slots))
    for cpu in 0..<cpuSlots { countdown(cpu).initialize(to: interval) }
    for slot in 0..<slots {
      ring[slot] = UInt16(truncatingIfNeeded: slot)
      (records + slot).initialize(to: GuardedSlot())
    }
  }

  var locked: SpinLocked<GuardedPoolState> { SpinLocked(at: control) }
  var ring: UnsafeMutablePointer<UInt16> {
    (control + GuardedPool.ringOffset(cpuSlots: cpuSlotMask + 1)).assumingMemoryBound(to: UInt16.self)
  }
  var records: UnsafeMutablePointer<GuardedSlot> {
    (control + GuardedPool.slotsOffset(slots: slotCount, cpuSlots: cpuSlotMask + 1)).assumingMemoryBound(to: GuardedSlot.self)
  }
  @inline(__always)
  func countdown(_ cpu: Int) -> UnsafeMutablePointer<Int> {
    (control + GuardedPool.countdownsOffset + (cpu & cpuSlotMask) &* 64).assumingMemoryBound(to: Int.self)
  }

  /// One past the last guard page.
  public var end: UInt { base &+ UInt(GuardedPool.rangeBytes(slots: slotCount)) }

  /// Whether `address` lies in the pool's range (a slot or a guard page).
  /// - Complexity: O(1).
  @inline(__always)
  public func contains(_ address: UInt) -> Bool { address &- base < UInt(GuardedPool.rangeBytes(slots: slotCount)) }

  /// The first byte of slot `slot`'s page.
  func page(ofSlot slot: Int) -> UInt { base &+ UInt(2 &* slot &+ 1) << UInt(Page.shift) }

  // MARK: Sampling

  /// Counts one allocation on `cpu`: true for the one in `interval` that should come
  /// from the pool, for an allocator that keeps no count of its own (a `Heap` counts in
  /// its caches). A plain (unlocked) per-CPU count: a lost update only shifts a sample.
  /// - Complexity: O(1).
  @inline(__always)
  public func shouldSample(cpu: Int) -> Bool {
    let count = countdown(cpu)
    let left = count.pointee &- 1
    guard left <= 0 else {
      count.pointee = left
      return false
    }
    count.pointee = interval
    return true
  }

  // MARK: Allocation and free

  /// An object of `size` bytes at `alignment` from the pool, for `cache` (0 for kmalloc,
  /// an object cache's serial otherwise), with the caller's stack recorded. nil when the
  /// size or alignment does not fit a page, when every slot is in use, or when the page
  /// cannot be made accessible; the caller then allocates from the heap.
  /// - Complexity: O(page size) to write the canary bytes, plus one page protection change.
  public func allocate(size: Int, alignment: Int, cache: UInt) -> UnsafeMutableRawPointer? {
    guard size >= 1, size <= Page.size, alignment >= 1, alignment <= Page.size, alignment & (alignment - 1) == 0 else {
      return nil
    }
    var stack = StackFrames(repeating: 0)
    let depth = capture(&stack)
    let cpu = CPU.current
    let hooks = hooks
    let object = locked.withLock(cpu: cpu) { state -> UInt? in
      guard state.ringCount > 0 else {
        state.missed += 1
        return nil
      }
      let slot = Int(ring[state.ringHead])
      let page = page(ofSlot: slot)
      guard hooks.setAccessible(hooks.context, page, true) else {
        state.missed += 1
        return nil
      }
      state.ringHead = state.ringHead &+ 1 == slotCount ? 0 : state.ringHead &+ 1
      state.ringCount -= 1
      state.live += 1
      state.sampled += 1
      let aligned = (size + alignment - 1) & ~(alignment - 1)
      let object = slot & 1 == 0 ? page &+ UInt(Page.size &- aligned) : page
      GuardedPool.fillCanary(page: page, except: object, size: size)
      let record = records + slot
      record.pointee.state = GuardedSlot.stateAllocated
      record.pointee.object = object
      record.pointee.size = size
      record.pointee.cache = cache
      record.pointee.allocatingCPU = cpu
      record.pointee.allocationStack = stack
      record.pointee.allocationDepth = depth
      record.pointee.freeDepth = 0
      return object
    } ?? nil
    return object.flatMap { UnsafeMutableRawPointer(bitPattern: $0) }
  }

  /// Frees a pool object (for `cache`, as it was allocated): checks its canary bytes,
  /// makes its page inaccessible and puts its slot at the tail of the quarantine.
  /// A pointer that is not a live object's start (`invalid free`, `double free`), one
  /// of another cache, or a corrupted canary is reported through the hooks, and the
  /// pool is left as it was.
  /// - Returns: false when `pointer` is not in the pool's range (nothing done).
  /// - Complexity: O(page size) for the canary check, plus one page protection change.
  @discardableResult
  public func free(_ pointer: UnsafeMutableRawPointer, cache: UInt) -> Bool {
    let address = UInt(bitPattern: pointer)
    guard contains(address) else { return false }
    var stack = StackFrames(repeating: 0)
    let depth = capture(&stack)
    let cpu = CPU.current
    let hooks = hooks
    let problem = locked.withLock(cpu: cpu) { state -> GuardedPoolReport? in
      guard let slot = slot(holding: address) else {
        return GuardedPoolReport(kind: .invalidFree, address: address, slot: nil, record: nil)
      }
      let record = records + slot
      guard record.pointee.state == GuardedSlot.stateAllocated else {
        let kind: GuardedPoolReport.Kind = record.pointee.state == GuardedSlot.stateFreed && record.pointee.object == address
          ? .doubleFree : .invalidFree
        return GuardedPoolReport(kind: kind, address: address, slot: slot, record: record.pointee)
      }
      guard record.pointee.object == address, record.pointee.cache == cache else {
        return GuardedPoolReport(
          kind: .invalidFree, address: address, slot: slot, record: record.pointee, wrongCache: record.pointee.object == address)
      }
      let page = page(ofSlot: slot)
      if let corrupted = GuardedPool.firstCorruptCanary(page: page, object: address, size: record.pointee.size) {
        return GuardedPoolReport(kind: .canary, address: corrupted, slot: slot, record: record.pointee)
      }
      guard hooks.setAccessible(hooks.context, page, false) else {
        // Cannot happen with a working platform; the object stays live (a leak, not a
        // hole in the quarantine).
        return nil
      }
      record.pointee.state = GuardedSlot.stateFreed
      record.pointee.freeingCPU = cpu
      record.pointee.freeStack = stack
      record.pointee.freeDepth = depth
      var tail = state.ringHead &+ state.ringCount
      if tail >= slotCount { tail -= slotCount }
      ring[tail] = UInt16(truncatingIfNeeded: slot)
      state.ringCount += 1
      state.live -= 1
      return nil
    }
    // nil: freed, or this CPU holds the pool lock already (a free from an interrupt
    // handler that interrupted the pool), and the object stays live.
    if case .some(.some(let report)) = problem { report.write(hooks, stack: stack, depth: depth, cpu: cpu) }
    return true
  }

  /// The size asked for when `pointer`, a live pool object, was allocated; nil for any
  /// other address.
  /// - Complexity: O(1).
  public func size(of pointer: UnsafeMutableRawPointer) -> Int? {
    let address = UInt(bitPattern: pointer)
    guard let slot = slot(holding: address) else { return nil }
    let record = records[slot]
    guard record.state == GuardedSlot.stateAllocated, record.object == address else { return nil }
    return record.size
  }

  /// The slot whose page holds `address`, or nil for a guard page or outside the pool.
  @inline(__always)
  func slot(holding address: UInt) -> Int? {
    guard contains(address) else { return nil }
    let page = Int((address &- base) >> UInt(Page.shift))
    return page & 1 == 1 ? page >> 1 : nil
  }

  // MARK: Canary

  /// The canary byte at `address`.
  @inline(__always)
  static func canaryByte(_ address: UInt) -> UInt8 { canary ^ UInt8(truncatingIfNeeded: address & 7) }

  /// The canary bytes of an 8-byte aligned word: byte i is `canary ^ i`, little-endian
  /// (`GuardedPoolTests` checks it against `canaryByte`).
  static let canaryWord: UInt64 = 0xadac_afae_a9a8_abaa

  /// The parts of `page` around the object `[object, end)`: the whole words before it,
  /// the bytes before it in its first word, the bytes after it in its last word, the
  /// whole words after it (as word indices and byte offsets).
  @inline(__always)
  static func canaryParts(page: UInt, object: UInt, end: UInt) -> (wordsBefore: Int, bytesBefore: Range<Int>, bytesAfter: Range<Int>, wordsAfter: Int) {
    let start = Int(object &- page), stop = Int(end &- page)
    let headWord = start >> 3, tailWord = (stop + 7) >> 3
    return (headWord, (headWord << 3)..<start, stop..<min(tailWord << 3, Page.size), tailWord)
  }

  /// Fills `page` with canary bytes but for `[object, object + size)`: whole words where
  /// they fall outside the object, bytes in the words it shares.
  static func fillCanary(page: UInt, except object: UInt, size: Int) {
    let parts = canaryParts(page: page, object: object, end: object &+ UInt(size))
    let words = UnsafeMutablePointer<UInt64>(bitPattern: page).unsafelyUnwrapped
    let bytes = UnsafeMutablePointer<UInt8>(bitPattern: page).unsafelyUnwrapped
    for index in 0..<parts.wordsBefore { words[index] = canaryWord }
    for offset in parts.bytesBefore { bytes[offset] = canaryByte(page &+ UInt(offset)) }
    for offset in parts.bytesAfter { bytes[offset] = canaryByte(page &+ UInt(offset)) }
    for index in parts.wordsAfter..<(Page.size >> 3) { words[index] = canaryWord }
  }

  /// The first byte of `page` outside the object that no longer holds its canary, or nil.
  static func firstCorruptCanary(page: UInt, object: UInt, size: Int) -> UInt? {
    let parts = canaryParts(page: page, object: object, end: object &+ UInt(size))
    let words = UnsafePointer<UInt64>(bitPattern: page).unsafelyUnwrapped
    let bytes = UnsafePointer<UInt8>(bitPattern: page).unsafelyUnwrapped
    func firstBad(_ offsets: Range<Int>) -> UInt? {
      for offset in offsets where bytes[offset] != canaryByte(page &+ UInt(offset)) { return page &+ UInt(offset) }
      return nil
    }
    for index in 0..<parts.wordsBefore where words[index] != canaryWord { return firstBad((index << 3)..<((index + 1) << 3)) }
    if let bad = firstBad(parts.bytesBefore) ?? firstBad(parts.bytesAfter) { return bad }
    for index in parts.wordsAfter..<(Page.size >> 3) where words[index] != canaryWord {
      return firstBad((index << 3)..<((index + 1) << 3))
    }
    return nil
  }

  // MARK: Stacks

  func capture(_ stack: inout StackFrames) -> Int {
    let hooks = hooks
    return withUnsafeMutableBytes(of: &stack) { bytes in
      let frames = bytes.baseAddress.unsafelyUnwrapped.bindMemory(to: UInt.self, capacity: GuardedSlot.stackDepth)
      return min(max(0, hooks.captureStack(hooks.context, frames, GuardedSlot.stackDepth)), GuardedSlot.stackDepth)
    }
  }

  /// Live pool objects of `cache` (an object cache's serial, 0 for kmalloc): an object
  /// cache is not destroyed while one is live.
  /// - Complexity: O(slots).
  public func liveObjects(ofCache cache: UInt) -> Int {
    locked.withLock(cpu: CPU.current) { _ in
      var count = 0
      for slot in 0..<slotCount where records[slot].state == GuardedSlot.stateAllocated && records[slot].cache == cache {
        count += 1
      }
      return count
    } ?? 0
  }

  /// Records `depth` frames from `frames` as the allocation stack of `pointer`, a live
  /// pool object, in place of what `allocate` captured: for a platform whose stack walk
  /// cannot pass through the allocator's own frames and that captures the caller's stack
  /// once the allocation has returned (the preload library: glibc's backtrace stops at
  /// the first Swift frame, which has no unwind table). Does nothing for any other
  /// pointer.
  /// - Complexity: O(stack depth).
  package func recordAllocationStack(of pointer: UnsafeMutableRawPointer, frames: UnsafePointer<UInt>, depth: Int) {
    let address = UInt(bitPattern: pointer)
    guard let slot = slot(holding: address) else { return }
    let count = min(max(0, depth), GuardedSlot.stackDepth)
    _ = locked.withLock(cpu: CPU.current) { _ in
      let record = records + slot
      guard record.pointee.state == GuardedSlot.stateAllocated, record.pointee.object == address else { return }
      for index in 0..<GuardedSlot.stackDepth { record.pointee.allocationStack[index] = index < count ? frames[index] : 0 }
      record.pointee.allocationDepth = count
    }
  }

  // MARK: Fork

  /// Takes the pool lock and keeps it until `unlockAll`: for a fork (the preload
  /// library's pthread_atfork prepare handler), after `Heap.lockAll` (an object cache's
  /// `destroy` takes the pool lock under the heap's; its holder takes no other lock).
  /// - Returns: false, with nothing held, when this CPU holds it already.
  /// - Complexity: O(1) plus the wait.
  package func lockAll() -> Bool { locked.acquireAcrossCalls(cpu: CPU.current) }

  /// Releases what `lockAll` took, from the CPU (thread) that took it.
  /// - Complexity: O(1).
  package func unlockAll() { locked.releaseAcrossCalls(cpu: CPU.current) }

  // MARK: Statistics

  /// Objects live in the pool, allocations it served, and sampled allocations it
  /// could not serve.
  /// - Complexity: O(1).
  public var statistics: (live: Int, sampled: Int, missed: Int) {
    let state = locked.snapshot.pointee
    return (state.live, state.sampled, state.missed)
  }
}
