import KernelMemory
import KernelHeap
import KernelSync
import PageFrames

/// The multi-CPU stress of issue #15, written once for the host (threads over
/// simulated RAM, `swift test`) and the test kernel (cores under QEMU's MTTCG).
///
/// Every CPU runs `run(cpu:...)` at once. Each operation is one of: kmalloc of a random
/// size and kfree, an object-cache allocation or free, allocPage/freePage, or a page run
/// of order 1–4. Each object carries a tag (from its CPU and serial) at its start and
/// end, checked when it is freed. A quarter or more of all frees are of objects another
/// CPU allocated: they pass through per-CPU queues, each under a `SpinLock`. A CPU whose
/// target queue is full waits for room, freeing its own queue's objects meanwhile, so
/// the share does not depend on how the CPUs (host threads) are scheduled. At the end
/// every CPU frees what it holds and empties its queue between two barriers, so when
/// `run` returns on all CPUs nothing is live; the caller then drains the caches and
/// `verify` compares the page counts, the heap's bytes and the checks with a
/// `QuietFigures` taken before.
public struct SMPStress {
  /// Objects one CPU holds at most.
  static let tableCapacity = 256
  /// Objects a CPU's queue holds at most (a full queue: the sender waits for room).
  /// Each step pops before it does anything else, so a queue fills only while its CPU
  /// is held up (a host thread descheduled).
  static let queueCapacity = 1024
  /// At least 1/`crossShareDivisor` of all frees cross CPUs (by construction about a
  /// third: one free in three is passed on, and a pass never falls back to a local free).
  public static let crossShareDivisor = 4
  /// The object size of the shared `ObjectCache` the stress uses.
  public static let cacheObjectSize = 96

  /// One object: where, its tag, its size (bytes, or the page order) and kind.
  struct Live {
    var address: UInt
    var tag: UInt64
    var size: UInt32
    var kind: UInt32
  }

  static let kindKmalloc: UInt32 = 1
  static let kindCacheObject: UInt32 = 2
  static let kindPages: UInt32 = 3

  /// Bytes of one CPU's part: its queue's lock and count, the queue, its table.
  static var perCPUBytes: Int {
    64 + (queueCapacity + tableCapacity) * MemoryLayout<Live>.stride
  }

  /// Bytes of shared memory `init` needs for `cpus` CPUs.
  /// - Complexity: O(1).
  public static func sharedBytes(cpus: Int) -> Int { 64 + cpus * perCPUBytes }

  let memory: UnsafeMutableRawPointer
  /// CPUs taking part.
  public let cpus: Int

  /// Lays the shared state (barrier, queues, tables) for `cpus` CPUs in `memory`.
  /// - Precondition: `memory` holds `sharedBytes(cpus:)` bytes, 16-byte aligned;
  ///   `cpus` in 1...`CPU.maximum`; no CPU runs yet.
  /// - Complexity: O(sharedBytes).
  public init(memory: UnsafeMutableRawPointer, cpus: Int) {
    self.memory = memory
    self.cpus = cpus
    memory.initializeMemory(as: UInt8.self, repeating: 0, count: SMPStress.sharedBytes(cpus: cpus))
  }

  var barrier: SpinBarrier {
    SpinBarrier(memory.assumingMemoryBound(to: SpinBarrierWords.self), parties: cpus)
  }

  private func part(_ cpu: Int) -> UnsafeMutableRawPointer { memory + 64 + cpu * SMPStress.perCPUBytes }
  /// CPU `cpu`'s queue length behind its lock (zeroed memory: a free lock, count 0).
  private func queueCount(_ cpu: Int) -> SpinLocked<Int> { SpinLocked(at: part(cpu)) }
  private func queue(_ cpu: Int) -> UnsafeMutablePointer<Live> { (part(cpu) + 64).assumingMemoryBound(to: Live.self) }
  private func table(_ cpu: Int) -> UnsafeMutablePointer<Live> { queue(cpu) + SMPStress.queueCapacity }

  /// Runs `operations` operations as CPU `cpu` (0..<cpus), then the end-of-test drain
  /// between two barriers. Every CPU must call it, each with its own `cpu`.
  ///
  /// - Parameters:
  ///   - heap, frames: the memory under test (shared by all CPUs).
  ///   - cache: an object cache of `cacheObjectSize`-byte objects in `heap`.
  ///   - seed: the run's seed; each CPU draws from `seed` mixed with its number.
  /// - Returns: what this CPU did and saw; failures carry the object's address.
  /// - Complexity: O(operations) plus the sizes zeroed and tagged.
  public func run(cpu: Int, heap: Heap, frames: PageFrameAllocator, cache: ObjectCache, seed: UInt64, operations: Int) -> SMPStressOutcome {
    var worker = Worker(
      stress: self, cpu: cpu, heap: heap, frames: frames, cache: cache,
      rng: SplitMix(seed: seed ^ (UInt64(cpu) &+ 1) &* 0x9E37_79B9_7F4A_7C15))
    barrier.wait()
    for _ in 0..<operations { worker.step() }
    // Others may still be waiting to pass this CPU objects: take them while waiting.
    barrier.wait { _ = worker.freePassed() }
    // Nobody pushes any more: free what this CPU holds and what others passed it.
    while worker.count > 0 { worker.freeLocal(at: worker.count - 1, mayPass: false) }
    while worker.freePassed() {}
    barrier.wait()
    return worker.outcome
  }

  /// Passes `object` to CPU `target`'s queue; false when the queue is full.
  /// The lock is taken as `CPU.current` (the worker numbers are the test's own).
  /// - Complexity: O(1) plus the wait for the queue's lock.
  func push(_ object: Live, to target: Int) -> Bool {
    queueCount(target).withLock(cpu: CPU.current) { count in
      guard count < SMPStress.queueCapacity else { return false }
      queue(target)[count] = object
      count += 1
      return true
    } ?? false
  }

  /// An object another CPU passed to `cpu`, or nil.
  /// - Complexity: O(1) plus the wait for the queue's lock.
  func pop(_ cpu: Int) -> Live? {
    queueCount(cpu).withLock(cpu: CPU.current) { count -> Live? in
      guard count > 0 else { return nil }
      count -= 1
      return queue(cpu)[count]
    } ?? nil
  }

  /// One CPU's side of the run.
  struct Worker {
    let stress: SMPStress
    let cpu: Int
    let heap: Heap
    let frames: PageFrameAllocator
    let cache: ObjectCache
    var rng: SplitMix
    var count = 0
    var serial: UInt64 = 0
    var outcome = SMPStressOutcome()

    var objects: UnsafeMutablePointer<Live> { stress.table(cpu) }

    mutating func random(_ bound: Int) -> Int { Int(truncatingIfNeeded: rng.next() % UInt64(bound)) }

    mutating func step() {
      outcome.operations += 1
      // An object another CPU passed here first, else a free or an allocation here.
      if freePassed() { return }
      if count == SMPStress.tableCapacity || (count > 0 && random(100) < 45) {
        freeLocal(at: random(count), mayPass: stress.cpus > 1)
      } else {
        allocate()
      }
    }

    mutating func allocate() {
      serial &+= 1
      let tag = UInt64(cpu) << 56 ^ serial ^ 0x5A5A_0000_0000_0000
      let choice = random(100)
      var object = Live(address: 0, tag: tag, size: 0, kind: SMPStress.kindKmalloc)
      if choice < 60 {
        let band = random(100)
        let size = band < 60 ? 1 + random(256) : band < 85 ? 257 + random(768) : band < 98 ? 1025 + random(7168) : 8193 + random(192_000)
        object.size = UInt32(size)
        object.address = UInt(bitPattern: heap.allocate(size))
      } else if choice < 80 {
        object.kind = SMPStress.kindCacheObject
        object.size = UInt32(SMPStress.cacheObjectSize)
        object.address = UInt(bitPattern: cache.allocate())
      } else {
        object.kind = SMPStress.kindPages
        let order = choice < 92 ? 0 : 1 + random(4)
        object.size = UInt32(order)
        object.address = UInt(bitPattern: frames.allocPages(order: order, zeroed: order == 0))
      }
      guard object.address != 0 else {
        record(false, "smp: allocation failed", UInt(object.size))
        return
      }
      SMPStress.writeTag(object)
      objects[count] = object
      count += 1
    }

    /// Frees this CPU's object `index`; with `mayPass`, a third go to another CPU's
    /// queue instead (freed there), so about a third of all frees cross CPUs.
    mutating func freeLocal(at index: Int, mayPass: Bool) {
      let object = objects[index]
      count -= 1
      objects[index] = objects[count]
      guard mayPass && random(3) == 0 else {
        free(object, crossCPU: false)
        return
      }
      let target = (cpu + 1 + random(stress.cpus - 1)) % stress.cpus
      // A full queue: its CPU is held up (a descheduled host thread). Wait for room,
      // emptying this CPU's own queue meanwhile, so that CPUs waiting on each other
      // all make progress.
      while !stress.push(object, to: target) {
        if !freePassed() { CPU.relax() }
      }
      outcome.passed += 1
    }

    /// Frees one object another CPU passed to this one; false when its queue is empty.
    mutating func freePassed() -> Bool {
      guard let object = stress.pop(cpu) else { return false }
      free(object, crossCPU: true)
      return true
    }

    mutating func free(_ object: Live, crossCPU: Bool) {
      outcome.frees += 1
      if crossCPU { outcome.crossFrees += 1 }
      record(SMPStress.tagIntact(object), "smp: object tag overwritten", object.address)
      let pointer = UnsafeMutableRawPointer(bitPattern: object.address)
      switch object.kind {
      case SMPStress.kindKmalloc:
        do throws(HeapError) { try heap.deallocate(pointer) } catch { record(false, "smp: kfree refused", object.address) }
      case SMPStress.kindCacheObject:
        do throws(HeapError) {
          if let pointer { try cache.free(pointer) }
        } catch { record(false, "smp: cache free refused", object.address) }
      default:
        do throws(PageFrameError) {
          if let pointer { try frames.freePages(pointer, order: Int(object.size)) }
        } catch { record(false, "smp: freePages refused", object.address) }
      }
    }

    mutating func record(_ condition: Bool, _ message: StaticString, _ value: UInt) {
      guard !condition else { return }
      if outcome.failures == 0 {
        outcome.firstFailure = message
        outcome.firstValue = value
      }
      outcome.failures += 1
    }
  }

  /// Bytes an object spans: its size, or its pages.
  static func span(_ object: Live) -> Int {
    object.kind == kindPages ? Page.size << Int(object.size) : Int(object.size)
  }

  /// The tag at the object's start (its first 8 bytes, fewer for a smaller object)
  /// and, from 16 bytes on, in its last 8-byte-aligned word.
  static func writeTag(_ object: Live) {
    let base = UnsafeMutableRawPointer(bitPattern: object.address)!
    let bytes = span(object)
    for byte in 0..<min(bytes, 8) { base.storeBytes(of: UInt8(truncatingIfNeeded: object.tag >> UInt64(8 * byte)), toByteOffset: byte, as: UInt8.self) }
    if bytes >= 16 { base.storeBytes(of: object.tag, toByteOffset: (bytes - 8) & ~7, as: UInt64.self) }
  }

  static func tagIntact(_ object: Live) -> Bool {
    let base = UnsafeRawPointer(bitPattern: object.address)!
    let bytes = span(object)
    for byte in 0..<min(bytes, 8) where base.load(fromByteOffset: byte, as: UInt8.self) != UInt8(truncatingIfNeeded: object.tag >> UInt64(8 * byte)) {
      return false
    }
    return bytes < 16 || base.load(fromByteOffset: (bytes - 8) & ~7, as: UInt64.self) == object.tag
  }
}

extension SMPStress {
  /// The figures of a quiet machine (every cache drained, no CPU inside an allocator)
  /// that a whole run must leave as they were: the independent reference of `verify`.
  public struct QuietFigures: Equatable, Sendable {
    public var freePages: Int
    public var allocatedPages: Int
    public var heapUsedBytes: Int

    /// The figures now. Precondition: the machine is quiet.
    /// - Complexity: O(CPU.maximum) plus `Heap.statistics` (which holds every heap lock).
    public init(heap: Heap, frames: PageFrameAllocator) {
      freePages = frames.freePageCount
      allocatedPages = frames.count(.allocated)
      heapUsedBytes = heap.statistics.usedBytes
    }
  }

  /// The checks after a run, on the host and in the guest alike, into `e`: no CPU saw a
  /// failure (its first one is the message), each did `operations` operations, every
  /// object passed on was freed by another CPU, and with more than one CPU at least
  /// 1/`crossShareDivisor` of all frees crossed CPUs; then, with every cache drained
  /// (the caller's job), `heap.check()` and `frames.checkInvariants()` pass, the owner counts add up to the
  /// page count, the cache has no live object, and the quiet figures equal `before`.
  /// - Returns: the sums over all CPUs (frees, cross-CPU frees, operations).
  /// - Complexity: O(pages + heap blocks): the two checkers.
  @discardableResult
  public static func verify(
    _ outcomes: UnsafeBufferPointer<SMPStressOutcome>, operations: Int,
    before: QuietFigures, heap: Heap, frames: PageFrameAllocator, cache: ObjectCache, _ e: inout Expectations
  ) -> SMPStressOutcome {
    var total = SMPStressOutcome()
    for (cpu, outcome) in outcomes.enumerated() {
      e.expect(outcome.failures == 0, outcome.firstFailure, outcome.firstValue)
      e.expect(outcome.operations == operations, "smp: a CPU did another number of operations than asked (cpu)", UInt(cpu))
      total.operations += outcome.operations
      total.frees += outcome.frees
      total.crossFrees += outcome.crossFrees
      total.passed += outcome.passed
      total.failures += outcome.failures
    }
    e.expect(total.crossFrees == total.passed, "smp: objects passed on and frees of other CPUs' objects differ (frees)", UInt(total.crossFrees))
    e.expect(outcomes.count < 2 || total.crossFrees * crossShareDivisor >= total.frees, "smp: too few cross-CPU frees (count)", UInt(total.crossFrees))
    let heapFailure = heap.check()
    e.expect(heapFailure == nil, "smp: heap check fails after the run (address)", heapFailure?.address ?? 0)
    e.expect(frames.checkInvariants() == nil, "smp: page frame invariants fail after the run", 0)
    var owned = 0
    for owner in PageOwner.allCases { owned += frames.count(owner) }
    e.expect(owned == frames.pageCount, "smp: the owner counts do not add up to the page count (sum)", UInt(owned))
    e.expect(cache.statistics?.liveObjects == 0, "smp: the object cache still has live objects", 0)
    let after = QuietFigures(heap: heap, frames: frames)
    e.expect(after.freePages == before.freePages, "smp: free pages differ from before the run (after)", UInt(after.freePages))
    e.expect(after.allocatedPages == before.allocatedPages, "smp: allocated pages differ from before the run (after)", UInt(after.allocatedPages))
    e.expect(after.heapUsedBytes == before.heapUsedBytes, "smp: heap used bytes differ from before the run (after)", UInt(after.heapUsedBytes))
    return total
  }
}

/// What one CPU did in `SMPStress.run`, and the first thing that went wrong.
public struct SMPStressOutcome: Sendable {
  public var operations = 0
  /// Objects freed by this CPU, and how many of them another CPU had allocated.
  public var frees = 0
  public var crossFrees = 0
  /// Objects this CPU passed to another CPU to free.
  public var passed = 0
  public var failures = 0
  public var firstFailure: StaticString = ""
  public var firstValue: UInt = 0

  /// An empty outcome.
  /// - Complexity: O(1).
  public init() {}
}
