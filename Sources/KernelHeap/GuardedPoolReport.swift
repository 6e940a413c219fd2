import KernelSync
import PageFrames

/// What the pool found: a bad access (from a fault in the pool's range) or a bad free,
/// with the slot's record for the report.
public struct GuardedPoolReport {
  /// The class of bug, each with a key tests and tools match (`key`).
  public enum Kind: Equatable, Sendable {
    /// A read in a guard page next to an object.
    case outOfBoundsRead
    /// A write in a guard page next to an object.
    case outOfBoundsWrite
    /// A read of a freed object's page.
    case useAfterFreeRead
    /// A write to a freed object's page.
    case useAfterFreeWrite
    /// A second free of a pool object.
    case doubleFree
    /// A free of an address that is not a live object's start, or through the wrong cache.
    case invalidFree
    /// Bytes next to the object were written (found when it is freed).
    case canary
    /// A fault in the pool that touches no object: a page never used, say.
    case invalidAccess

    /// The report's first word: `kfence-oob-write` and so on.
    public var key: StaticString {
      switch self {
      case .outOfBoundsRead: return "kfence-oob-read"
      case .outOfBoundsWrite: return "kfence-oob-write"
      case .useAfterFreeRead: return "kfence-uaf-read"
      case .useAfterFreeWrite: return "kfence-uaf-write"
      case .doubleFree: return "kfence-double-free"
      case .invalidFree: return "kfence-invalid-free"
      case .canary: return "kfence-canary"
      case .invalidAccess: return "kfence-invalid-access"
      }
    }
  }

  /// The class of bug.
  public let kind: Kind
  /// The address accessed, freed, or the first corrupted canary byte.
  public let address: UInt
  /// The slot of the object concerned, nil when no object is.
  public let slot: Int?
  let record: GuardedSlot?

  /// A free of a live object's start through the wrong door: `kfree` of an object
  /// cache's object, or an object cache's free of another's.
  public let wrongCache: Bool

  init(kind: Kind, address: UInt, slot: Int?, record: GuardedSlot?, wrongCache: Bool = false) {
    self.kind = kind
    self.address = address
    self.slot = slot
    self.record = record
    self.wrongCache = wrongCache
  }

  /// The object's first byte, its size and its cache (0 for kmalloc, else an object
  /// cache's serial); nil when no object is concerned.
  public var object: (address: UInt, size: Int, cache: UInt)? {
    guard let record, record.state != GuardedSlot.stateUnused else { return nil }
    return (record.object, record.size, record.cache)
  }

  /// The address's distance from the object: negative before its first byte, from 0 to
  /// size - 1 inside it, size and above past its end.
  public var offset: Int? {
    guard let object else { return nil }
    return Int(bitPattern: address &- object.address)
  }

  /// Prints the report through `hooks.write`, then calls `hooks.fatal` when `fatal`.
  /// `stack` is the current call's (a free's; a fault handler prints its own).
  func write(_ hooks: GuardedPoolHooks, stack: StackFrames?, depth: Int, cpu: Int, fatal: Bool = true) {
    var out = ReportText(hooks)
    out.put(kind.key)
    out.put(": ")
    switch kind {
    case .outOfBoundsRead, .outOfBoundsWrite:
      out.put(kind == .outOfBoundsRead ? "out-of-bounds read at " : "out-of-bounds write at ")
    case .useAfterFreeRead, .useAfterFreeWrite:
      out.put(kind == .useAfterFreeRead ? "use-after-free read at " : "use-after-free write at ")
    case .doubleFree: out.put("double free of ")
    case .invalidFree: out.put("invalid free of ")
    case .canary: out.put("canary bytes overwritten at ")
    case .invalidAccess: out.put("access to an unused pool page at ")
    }
    out.hex(address)
    if let object, let offset {
      out.put(": ")
      if offset < 0 {
        out.decimal(-offset)
        out.put(offset == -1 ? " byte left of" : " bytes left of")
      } else if offset >= object.size {
        out.decimal(offset - object.size + 1)
        out.put(offset - object.size == 0 ? " byte right of" : " bytes right of")
      } else if offset > 0 {
        out.put("byte ")
        out.decimal(offset)
        out.put(" of")
      } else {
        out.put("the start of")
      }
      out.put(record?.state == GuardedSlot.stateFreed ? " the freed " : " the ")
      out.decimal(object.size)
      out.put("-byte object at ")
      out.hex(object.address)
      if object.cache == 0 {
        out.put(" (kmalloc")
      } else {
        out.put(" (object cache #")
        out.decimal(Int(bitPattern: object.cache))
      }
      out.put(", slot ")
      out.decimal(slot ?? 0)
      out.put(wrongCache ? "), freed as another cache's object" : ")")
    } else {
      out.put(": no object of the pool")
    }
    out.put("\n")
    if let record, record.state != GuardedSlot.stateUnused {
      out.stack("  allocated on cpu ", record.allocatingCPU, record.allocationStack, record.allocationDepth)
      if record.state == GuardedSlot.stateFreed {
        out.stack("  freed on cpu ", record.freeingCPU, record.freeStack, record.freeDepth)
      }
    }
    if let stack { out.stack("  this call on cpu ", cpu, stack, depth) }
    out.flush()
    if fatal { hooks.fatal(hooks.context) }
  }
}

extension GuardedPool {
  /// What a fault at `address` (a write when `isWrite`) in the pool's range was, from the
  /// slot records read without the lock (a fault handler may interrupt the pool); nil
  /// for an address outside the pool.
  /// - Complexity: O(1).
  public func describeFault(at address: UInt, isWrite: Bool) -> GuardedPoolReport? {
    guard contains(address) else { return nil }
    let page = Int((address &- base) >> UInt(Page.shift))
    if page & 1 == 1 {
      let slot = page >> 1
      let record = records[slot]
      if record.state == GuardedSlot.stateFreed {
        return GuardedPoolReport(kind: isWrite ? .useAfterFreeWrite : .useAfterFreeRead, address: address, slot: slot, record: record)
      }
      return GuardedPoolReport(kind: .invalidAccess, address: address, slot: nil, record: nil)
    }
    // A guard page: the nearer of the objects on either side that has been used.
    var best: (slot: Int, distance: UInt)? = nil
    if page > 0 {
      let slot = (page >> 1) - 1
      let record = records[slot]
      if record.state != GuardedSlot.stateUnused {
        best = (slot, address &- (record.object &+ UInt(record.size)))
      }
    }
    if page >> 1 < slotCount {
      let slot = page >> 1
      let record = records[slot]
      if record.state != GuardedSlot.stateUnused {
        let distance = record.object &- address
        if best == nil || distance < best!.distance { best = (slot, distance) }
      }
    }
    guard let best else { return GuardedPoolReport(kind: .invalidAccess, address: address, slot: nil, record: nil) }
    return GuardedPoolReport(kind: isWrite ? .outOfBoundsWrite : .outOfBoundsRead, address: address, slot: best.slot, record: records[best.slot])
  }

  /// Prints the report of a fault at `address` (see `describeFault`), then calls the
  /// fatal hook when `fatal` (a kernel's exception handler prints its registers first and
  /// ends the run itself). Returns false, printing nothing, for an address outside the pool.
  /// - Complexity: O(1).
  public func reportFault(at address: UInt, isWrite: Bool, fatal: Bool = true) -> Bool {
    guard let report = describeFault(at: address, isWrite: isWrite) else { return false }
    report.write(hooks, stack: nil, depth: 0, cpu: CPU.current, fatal: fatal)
    return true
  }
}

/// Report text, a line at a time through the write hook (nothing allocated: a report may
/// come from a fault handler).
struct ReportText {
  let hooks: GuardedPoolHooks
  var buffer = InlineArray<160, UInt8>(repeating: 0)
  var count = 0

  init(_ hooks: GuardedPoolHooks) { self.hooks = hooks }

  mutating func byte(_ value: UInt8) {
    if count == 160 { flush() }
    buffer[count] = value
    count += 1
  }

  mutating func put(_ text: StaticString) {
    let start = text.utf8Start
    for index in 0..<text.utf8CodeUnitCount { byte(start[index]) }
  }

  mutating func hex(_ value: UInt) {
    put("0x")
    var started = false
    for shift in stride(from: 60, through: 0, by: -4) {
      let digit = UInt8(truncatingIfNeeded: (value >> UInt(shift)) & 15)
      if digit != 0 || started || shift == 0 {
        started = true
        byte(digit < 10 ? 48 + digit : 87 + digit)
      }
    }
  }

  mutating func decimal(_ value: Int) {
    var digits = InlineArray<20, UInt8>(repeating: 0)
    var left = UInt(bitPattern: value < 0 ? 0 &- value : value)
    if value < 0 { byte(45) }
    var used = 0
    repeat {
      digits[used] = 48 + UInt8(truncatingIfNeeded: left % 10)
      left /= 10
      used += 1
    } while left > 0
    while used > 0 {
      used -= 1
      byte(digits[used])
    }
  }

  mutating func stack(_ label: StaticString, _ cpu: Int, _ frames: StackFrames, _ depth: Int) {
    put(label)
    decimal(cpu)
    put(", backtrace:")
    for index in 0..<min(depth, GuardedSlot.stackDepth) {
      byte(32)
      hex(frames[index])
    }
    put("\n")
  }

  mutating func flush() {
    guard count > 0 else { return }
    let hooks = hooks
    let used = count
    withUnsafeBytes(of: &buffer) { bytes in
      hooks.write(hooks.context, bytes.baseAddress.unsafelyUnwrapped.assumingMemoryBound(to: UInt8.self), used)
    }
    count = 0
  }
}
