// The SMP stress's shared memory: what a live object is, each core's area (its queue
// of objects other cores hand it to free, under a TicketLock, and its table of live
// objects), the run's parameters, the start word and the barriers.
#if arch(arm64) && os(none)
import Arch
import ArchSupport
import KernelHeap
import KernelSync
import KernelSyncAtomics
import PageFrames

/// Operations per core when the command line gives no `ops=N`.
let smpDefaultOperations = 250_000
/// Live objects a core keeps at most in its table.
let smpLiveLimit = 256
/// Objects a core's queue holds; a push to a full queue fails (the pusher frees).
let smpQueueCapacity = 2048
/// Objects a core takes from its queue between two of its own operations.
let smpQueueBatch = 4
/// Object size of the stress's object cache.
let smpCacheObjectBytes = 96
/// How long a core waits at a barrier for the others, in seconds (virtual counter).
let smpBarrierTimeLimitSeconds: UInt64 = 600
/// Detailed failure lines a core prints at most (the count goes on).
let smpFailureLinesPerCore = 4

/// What an object of the stress is, and so how it was allocated and is freed.
enum SMPKind: UInt8 {
  case kmalloc, cache, page, pages

  var name: StaticString {
    switch self {
    case .kmalloc: return "kmalloc"
    case .cache: return "kmemCacheAlloc"
    case .page: return "allocPage"
    case .pages: return "allocPages"
    }
  }
}

/// A live object: where, what, its size in bytes (kmalloc, cache) or its page order
/// (page, pages), and the tag written into it when it was allocated.
struct SMPObject {
  var address: UInt
  var size: Int
  var tag: UInt64
  var kind: SMPKind
}

/// What the boot core sets up before the start: read by every core after the start
/// word is set (acquire), never written after.
struct SMPRun {
  /// The first core's area; core n's is `areaBytes` × n further.
  let areas: UnsafeMutableRawPointer
  /// Bit n set: core n takes part (it is online).
  let members: UInt
  let operations: Int
  let seed: UInt64
  let cache: ObjectCache

  /// Pages of one core's area: its header, queue and table.
  static let areaPages = Page.count(forBytes: SMPCoreArea.tableOffset + smpLiveLimit * MemoryLayout<SMPObject>.stride)
  /// Pages of every core's area.
  static var totalPages: Int { areaPages * Platform.maximumCores }

  /// Cores taking part.
  var cores: Int { members.nonzeroBitCount }

  /// Core `cpu`'s area.
  func area(_ cpu: Int) -> SMPCoreArea { SMPCoreArea(base: areas + (SMPRun.areaPages << Page.shift) * cpu) }

  /// The `index`-th member other than `cpu` (0 ..< cores − 1).
  func otherMember(_ cpu: Int, _ index: Int) -> Int {
    var seen = 0
    for candidate in 0..<Platform.maximumCores where members & (1 << UInt(candidate)) != 0 && candidate != cpu {
      if seen == index { return candidate }
      seen += 1
    }
    return cpu
  }
}

/// The run, once the boot core has set it up; nil before.
nonisolated(unsafe) var smpRun: SMPRun? = nil

/// The start word: 0 while the boot core sets up, then `smpStart` (run) or `smpAbort`.
nonisolated(unsafe) var smpStartWord: UInt32 = 0
let smpStart: UInt32 = 1
let smpAbort: UInt32 = 2

/// Sets the start word (release: `smpRun` is visible to whoever sees it).
func smpSignal(_ value: UInt32) {
  withUnsafeMutablePointer(to: &smpStartWord) { ks_store_release($0, value) }
}

/// Waits until the start word is set and returns it.
func smpWaitForStart() -> UInt32 {
  withUnsafeMutablePointer(to: &smpStartWord) { word in
    while true {
      let value = ks_load_acquire(word)
      if value != 0 { return value }
      arch_cpu_relax()
    }
  }
}

/// One core's area, in the page run the boot core allocated (zeroed: the lock is free,
/// the queue empty, the phase 0): a header, the queue ring, the table of live objects.
struct SMPCoreArea {
  let base: UnsafeMutableRawPointer

  // Header layout, byte offsets.
  static let lockOffset = 0            // TicketLockWords
  static let phaseOffset = 16          // UInt32: barriers passed (atomic)
  static let queueHeadOffset = 24      // Int: the oldest queued object's index
  static let queueCountOffset = 32     // Int: objects queued
  static let operationsOffset = 40     // Int, written once at the end
  static let crossFreesOffset = 48     // Int, written once at the end
  static let failuresOffset = 56       // Int, written once at the end
  static let queueOffset = 256
  static let tableOffset = queueOffset + smpQueueCapacity * MemoryLayout<SMPObject>.stride

  var lock: TicketLock { TicketLock(base.assumingMemoryBound(to: TicketLockWords.self)) }
  var phaseWord: UnsafeMutablePointer<UInt32> { (base + SMPCoreArea.phaseOffset).assumingMemoryBound(to: UInt32.self) }
  var queue: UnsafeMutablePointer<SMPObject> { (base + SMPCoreArea.queueOffset).assumingMemoryBound(to: SMPObject.self) }
  var table: UnsafeMutablePointer<SMPObject> { (base + SMPCoreArea.tableOffset).assumingMemoryBound(to: SMPObject.self) }

  /// Binds the area's memory to its types; once, by the boot core, before the start.
  func bind() {
    _ = base.bindMemory(to: TicketLockWords.self, capacity: 1)
    _ = (base + SMPCoreArea.queueOffset).bindMemory(to: SMPObject.self, capacity: smpQueueCapacity)
    _ = (base + SMPCoreArea.tableOffset).bindMemory(to: SMPObject.self, capacity: smpLiveLimit)
  }

  func load(_ offset: Int) -> Int { base.load(fromByteOffset: offset, as: Int.self) }
  func store(_ offset: Int, _ value: Int) { base.storeBytes(of: value, toByteOffset: offset, as: Int.self) }

  /// Queues `object` for this area's core to free, from core `cpu`.
  /// - Returns: false when the queue is full (or the lock refused `cpu`).
  /// - Complexity: O(1) plus the wait for the lock.
  func push(_ object: SMPObject, from cpu: Int) -> Bool {
    guard lock.lock(cpu: cpu) == nil else { return false }
    let count = load(SMPCoreArea.queueCountOffset)
    let pushed = count < smpQueueCapacity
    if pushed {
      queue[(load(SMPCoreArea.queueHeadOffset) + count) % smpQueueCapacity] = object
      store(SMPCoreArea.queueCountOffset, count + 1)
    }
    lock.unlock(cpu: cpu)
    return pushed
  }

  /// Takes the oldest queued object, by the area's own core `cpu`; nil when empty.
  /// An empty queue is seen without the lock (a push racing with it waits for the
  /// next call).
  /// - Complexity: O(1) plus the wait for the lock.
  func pop(by cpu: Int) -> SMPObject? {
    guard ks_load_relaxed64((base + SMPCoreArea.queueCountOffset).assumingMemoryBound(to: UInt64.self)) != 0,
      lock.lock(cpu: cpu) == nil
    else { return nil }
    var object: SMPObject? = nil
    let count = load(SMPCoreArea.queueCountOffset)
    if count > 0 {
      let head = load(SMPCoreArea.queueHeadOffset)
      object = queue[head]
      store(SMPCoreArea.queueHeadOffset, (head + 1) % smpQueueCapacity)
      store(SMPCoreArea.queueCountOffset, count - 1)
    }
    lock.unlock(cpu: cpu)
    return object
  }
}

/// Marks core `cpu` as past barrier `phase` and waits until every member is, or until
/// the time limit (reported: the members that did not arrive).
/// - Returns: whether every member arrived.
func smpBarrier(_ run: SMPRun, cpu: Int, phase: UInt32) -> Bool {
  ks_store_release(run.area(cpu).phaseWord, phase)
  let limit = Clock.frequency * smpBarrierTimeLimitSeconds
  let start = Clock.ticks
  while true {
    var missing: UInt = 0
    for member in 0..<Platform.maximumCores where run.members & (1 << UInt(member)) != 0 {
      if ks_load_acquire(run.area(member).phaseWord) < phase { missing |= 1 << UInt(member) }
    }
    if missing == 0 { return true }
    if Clock.ticks &- start > limit {
      withConsoleLock {
        kput("smp: cpu ")
        kputDecimal(UInt(cpu))
        kput(": barrier ")
        kputDecimal(UInt(phase))
        kput(" not reached by the cores in mask ")
        kputHex(missing)
        kput(" within ")
        kputDecimal(UInt(smpBarrierTimeLimitSeconds))
        kput(" s\n")
      }
      return false
    }
    arch_cpu_relax()
  }
}

/// xorshift64* over a state derived from the seed and the core's number.
struct SMPRandom {
  private var state: UInt64

  init(seed: UInt64, cpu: Int) {
    // splitmix64 of seed + cpu: nearby seeds give unrelated streams; never 0.
    var z = seed &+ UInt64(cpu) &* 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    state = z == 0 ? 1 : z
  }

  mutating func next() -> UInt64 {
    state ^= state >> 12
    state ^= state << 25
    state ^= state >> 27
    return state &* 0x2545_F491_4F6C_DD1D
  }

  /// A number in 0 ..< bound (bound > 0).
  mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

#endif
