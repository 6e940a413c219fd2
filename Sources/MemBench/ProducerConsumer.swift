// `make bench ONLY=threads`, producer/consumer: one thread allocates 64-byte objects,
// writes all 64 bytes of each and hands them through a bounded single-producer
// single-consumer ring to a second thread, which reads each and frees it. Every free is
// then a free from another CPU: on the project's heap the locked remote-free path into
// the owning slab cache, in glibc, jemalloc and mimalloc their own cross-thread frees.
// The one-thread variant runs the same ring from one thread: it allocates, writes and
// pushes a ring's worth (256 objects), then pops, reads and frees them, and again; so
// the 2-thread/1-thread ratio is what handing objects across cores costs over the same
// work on one core (with both threads busy at once, 2 threads may also come out faster).
import Glibc
import KernelMemory
import KernelSyncAtomics

/// A bounded single-producer single-consumer ring of pointers over KernelSyncAtomics:
/// the producer publishes a filled slot with a release store of `head`, the consumer
/// an emptied one with a release store of `tail`; each side reads the other's index
/// with acquire and keeps the value it last saw, so it touches the other side's cache
/// line only when the ring looks full (or empty).
final class PointerRing {
  /// Slots; a power of two.
  static let capacity: UInt32 = 256
  /// `head` at word 0 and `tail` at word 32: 128 bytes apart, so the two indexes never
  /// share a line or the pair of lines the host's prefetcher fetches together.
  private let indexes: UnsafeMutablePointer<UInt32>
  private let slots: UnsafeMutablePointer<UInt64>

  init() {
    var raw: UnsafeMutableRawPointer?
    precondition(posix_memalign(&raw, 128, 256) == 0)
    indexes = raw!.bindMemory(to: UInt32.self, capacity: 64)
    indexes.initialize(repeating: 0, count: 64)
    slots = UnsafeMutablePointer<UInt64>.allocate(capacity: Int(PointerRing.capacity))
    slots.initialize(repeating: 0, count: Int(PointerRing.capacity))
  }

  deinit {
    Glibc.free(indexes)
    slots.deallocate()
  }

  private var head: UnsafeMutablePointer<UInt32> { indexes }
  private var tail: UnsafeMutablePointer<UInt32> { indexes + 32 }

  /// Producer side: puts `object` into the ring; false when it is full. `next` is the
  /// producer's own head, `tailSeen` the consumer's tail as it last read it.
  @inline(__always)
  func push(_ object: UnsafeMutableRawPointer, next: inout UInt32, tailSeen: inout UInt32) -> Bool {
    if next &- tailSeen == PointerRing.capacity {
      tailSeen = ks_load_acquire(tail)
      if next &- tailSeen == PointerRing.capacity { return false }
    }
    ks_store_relaxed64(slots + Int(next & (PointerRing.capacity - 1)), UInt64(UInt(bitPattern: object)))
    next &+= 1
    ks_store_release(head, next)
    return true
  }

  /// Consumer side: the oldest object in the ring, or nil when it is empty. `next` is
  /// the consumer's own tail, `headSeen` the producer's head as it last read it.
  @inline(__always)
  func pop(next: inout UInt32, headSeen: inout UInt32) -> UnsafeMutableRawPointer? {
    if next == headSeen {
      headSeen = ks_load_acquire(head)
      if next == headSeen { return nil }
    }
    let object = ks_load_relaxed64(slots + Int(next & (PointerRing.capacity - 1)))
    next &+= 1
    ks_store_release(tail, next)
    return UnsafeMutableRawPointer(bitPattern: UInt(object))
  }
}

/// One turn of a wait for the other side: spin on the ring's index, and after 128
/// turns give up the time slice (the other thread may be descheduled on this core).
@inline(__always) func ringWait(_ turns: inout Int) {
  turns &+= 1
  if turns & 127 == 0 { sched_yield() }
}

/// The object size the producer/consumer rows use.
let producerConsumerObjectBytes = 64

/// Writes `value` into all 64 bytes of `object`.
@inline(__always) func fillObject(_ object: UnsafeMutableRawPointer, _ value: Int) {
  for word in 0..<(producerConsumerObjectBytes / 8) {
    object.storeBytes(of: UInt64(truncatingIfNeeded: value), toByteOffset: word * 8, as: UInt64.self)
  }
}

/// Reads the last word of `object` (what `fillObject` wrote).
@inline(__always) func readObject(_ object: UnsafeMutableRawPointer) -> UInt64 {
  object.load(fromByteOffset: producerConsumerObjectBytes - 8, as: UInt64.self)
}

/// A pthread running `body`, retained until it ends.
func startThread(_ body: @escaping () -> Void) -> pthread_t {
  final class Body {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
  }
  let context = Unmanaged.passRetained(Body(body)).toOpaque()
  var handle = pthread_t()
  precondition(pthread_create(&handle, nil, { raw in
    Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
    return nil
  }, context) == 0)
  return handle
}

/// What a producer/consumer run's threads share: the ring, the start flags, their CPU
/// numbers and the consumer's checksum.
final class ProducerConsumerShared {
  let ring = PointerRing()
  /// Word 0: threads ready; word 16: the start signal.
  let flags = UnsafeMutablePointer<UInt32>.allocate(capacity: 32)
  /// Each thread's CPU number, by role (0 producer, 1 consumer).
  let cpus = UnsafeMutablePointer<Int>.allocate(capacity: 2)
  var checksum: UInt64 = 0
  init() {
    flags.initialize(repeating: 0, count: 32)
    cpus.initialize(repeating: 0, count: 2)
  }
  deinit {
    flags.deallocate()
    cpus.deallocate()
  }
  var ready: UnsafeMutablePointer<UInt32> { flags }
  var go: UnsafeMutablePointer<UInt32> { flags + 16 }
  /// Says this thread is ready, then waits for the start signal.
  func arrive(_ role: Int) {
    cpus[role] = CPU.current
    _ = ks_fetch_increment(ready)
    while ks_load_acquire(go) == 0 { sched_yield() }
  }
}

/// ns per pair (allocation, write, hand-over, read, free) of `pairs` 64-byte objects on
/// `allocator`, with `threads` = 2 (a producer and a consumer thread) or 1 (one thread,
/// the ring filled and emptied in turns). Each run starts new threads, which on the
/// host take the next CPU numbers (`CPU.current`: each thread gets its own the first
/// time it asks); the two threads read theirs before the start, and with `slots` (the
/// heap's CPU slots) given, the run checks that they use different slots, so every
/// free is a remote free. Every object's contents are checked on arrival (a checksum).
func producerConsumerPairs<A: BenchAllocator>(_ allocator: A, pairs: Int, threads: Int, slots: Int? = nil) -> Double {
  let shared = ProducerConsumerShared()
  var handles: [pthread_t] = []
  if threads == 1 {
    handles.append(startThread {
      var allocator = allocator
      var head: UInt32 = 0, tailSeen: UInt32 = 0, tail: UInt32 = 0, headSeen: UInt32 = 0
      var checksum: UInt64 = 0
      shared.arrive(0)
      var done = 0
      while done < pairs {
        let batch = min(Int(PointerRing.capacity), pairs - done)
        for k in 0..<batch {
          guard let object = allocator.allocate(producerConsumerObjectBytes) else { fatalError("producer/consumer: allocation failed") }
          fillObject(object, done + k)
          precondition(shared.ring.push(object, next: &head, tailSeen: &tailSeen))
        }
        for _ in 0..<batch {
          let object = shared.ring.pop(next: &tail, headSeen: &headSeen)!
          checksum &+= readObject(object)
          allocator.free(object)
        }
        done += batch
      }
      shared.checksum = checksum
    })
  } else {
    precondition(threads == 2)
    handles.append(startThread {
      var allocator = allocator
      var head: UInt32 = 0, tailSeen: UInt32 = 0, turns = 0
      shared.arrive(0)
      for i in 0..<pairs {
        guard let object = allocator.allocate(producerConsumerObjectBytes) else { fatalError("producer/consumer: allocation failed") }
        fillObject(object, i)
        while !shared.ring.push(object, next: &head, tailSeen: &tailSeen) { ringWait(&turns) }
      }
    })
    handles.append(startThread {
      var allocator = allocator
      var tail: UInt32 = 0, headSeen: UInt32 = 0, turns = 0
      var checksum: UInt64 = 0
      shared.arrive(1)
      for _ in 0..<pairs {
        var object = shared.ring.pop(next: &tail, headSeen: &headSeen)
        while object == nil {
          ringWait(&turns)
          object = shared.ring.pop(next: &tail, headSeen: &headSeen)
        }
        checksum &+= readObject(object!)
        allocator.free(object!)
      }
      shared.checksum = checksum
    })
  }
  while ks_load_acquire(shared.ready) < UInt32(threads) { sched_yield() }
  if threads == 2, let slots {
    precondition(shared.cpus[0] % slots != shared.cpus[1] % slots,
      "producer/consumer: CPUs \(shared.cpus[0]) and \(shared.cpus[1]) share a slot of \(slots)")
  }
  let start = now()
  ks_store_release(shared.go, 1)
  for handle in handles { pthread_join(handle, nil) }
  let elapsed = now() - start
  let expected = (0..<pairs).reduce(UInt64(0)) { $0 &+ UInt64($1) }
  precondition(shared.checksum == expected, "producer/consumer: objects arrived changed")
  return Double(elapsed) / Double(pairs)
}

/// The producer/consumer figures of one allocator: best of the repetitions.
struct ProducerConsumerFigures {
  var allocator: String
  /// ns per pair, producer and consumer threads.
  var twoThreads: Double
  /// ns per pair, one thread filling and emptying the ring.
  var oneThread: Double
}

/// Producer/consumer on the project's heap (kmalloc over a simulated machine of 1 GiB,
/// as memInit builds it), glibc, jemalloc and mimalloc. Within each repetition every
/// allocator runs 2 threads then 1 thread, in turn; the best of the repetitions counts
/// (other tenants of a shared host only ever add time), as in the threads rows.
func producerConsumerFigures(pairs: Int, repetitions: Int, including: (String) -> Bool) -> [ProducerConsumerFigures] {
  let project = ProjectKernel()
  var runs: [(name: String, run: (_ threads: Int) -> Double)] = []
  runs.append(("project", { producerConsumerPairs(project, pairs: pairs, threads: $0, slots: project.heap.slots) }))
  runs.append(("glibc", { producerConsumerPairs(GlibcMalloc(), pairs: pairs, threads: $0) }))
  if let jemalloc = MallocLibraries.jemalloc {
    runs.append(("jemalloc", { producerConsumerPairs(DynamicMalloc(jemalloc), pairs: pairs, threads: $0) }))
  }
  if let mimalloc = MallocLibraries.mimalloc {
    runs.append(("mimalloc", { producerConsumerPairs(DynamicMalloc(mimalloc), pairs: pairs, threads: $0) }))
  }
  runs = runs.filter { including($0.name) }
  var two = runs.map { _ in Double.infinity }, one = two
  for _ in 0..<repetitions {
    for (index, entry) in runs.enumerated() {
      two[index] = min(two[index], entry.run(2))
      one[index] = min(one[index], entry.run(1))
    }
  }
  withExtendedLifetime(project) {}
  return runs.indices.map { ProducerConsumerFigures(allocator: runs[$0].name, twoThreads: two[$0], oneThread: one[$0]) }
}
