import Glibc
import KernelMemory
@testable import KernelHeap
import KernelSync
import MemInit
import PageFrames
import Testing

/// What the pool's hooks did, kept apart from the pool: which pages it made accessible
/// (a model checked against real `mprotect` calls), the report text and fatal calls.
final class PoolRecorder {
  var accessible = Set<UInt>()
  var protectCalls = 0
  var text: [UInt8] = []
  var fatalCalls = 0
  var report: String { String(decoding: text, as: UTF8.self) }

  static func of(_ context: UnsafeMutableRawPointer?) -> PoolRecorder {
    Unmanaged<PoolRecorder>.fromOpaque(context!).takeUnretainedValue()
  }
}

/// A heap on simulated RAM with a pool of `slots` slots over a real PROT_NONE mapping.
final class PoolMachine {
  let ram: SimulatedRAM
  let memory: KernelMemory
  let heap: Heap
  let pool: GuardedPool
  let recorder: PoolRecorder
  let range: UnsafeMutableRawPointer
  let control: UnsafeMutableRawPointer

  init(slots: Int, interval: Int) throws {
    ram = SimulatedRAM(bytes: 32 << 20)
    let base: UInt = 0x4000_0000
    let config = MemInitConfig(
      ramBase: base, ramSize: UInt(ram.bytes), kernelStart: base + 0x20_0000, kernelEnd: base + 0x21_0000,
      directMapOffset: Int(bitPattern: ram.base) - Int(bitPattern: base), zeroFill: hostZeroFill)
    memory = try KernelMemory(config, layout: try planLayout(config))
    let maybeHeap = memory.heap
    heap = try #require(maybeHeap)
    recorder = PoolRecorder()
    range = mmap(nil, GuardedPool.rangeBytes(slots: slots), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
    let controlBytes = GuardedPool.controlBytes(slots: slots, cpuSlots: heap.slots)
    control = UnsafeMutableRawPointer.allocate(byteCount: controlBytes, alignment: 64)
    let hooks = GuardedPoolHooks(
      context: Unmanaged.passUnretained(recorder).toOpaque(),
      setAccessible: { context, page, accessible in
        let recorder = PoolRecorder.of(context)
        recorder.protectCalls += 1
        guard mprotect(UnsafeMutableRawPointer(bitPattern: page), 4096, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0
        else { return false }
        if accessible { recorder.accessible.insert(page) } else { recorder.accessible.remove(page) }
        return true
      },
      captureStack: { _, buffer, capacity in
        for index in 0..<min(3, capacity) { buffer[index] = UInt(0x1000 + index) }
        return min(3, capacity)
      },
      write: { context, bytes, count in PoolRecorder.of(context).text += UnsafeBufferPointer(start: bytes, count: count) },
      fatal: { context in PoolRecorder.of(context).fatalCalls += 1 })
    pool = try #require(GuardedPool(
      base: UInt(bitPattern: range), slots: slots, interval: interval, cpuSlots: heap.slots, control: control, hooks: hooks))
    #expect(heap.attach(pool))
  }

  deinit {
    munmap(range, GuardedPool.rangeBytes(slots: pool.slotCount))
    control.deallocate()
  }

  /// Slot `n`'s page, from the layout the documentation gives (guard, slot, guard, ...).
  func page(_ slot: Int) -> UInt { UInt(bitPattern: range) + UInt(2 * slot + 1) * 4096 }
  /// The slot holding `pointer`, or nil.
  func slot(of pointer: UnsafeMutableRawPointer) -> Int? {
    let offset = Int(bitPattern: UInt(bitPattern: pointer) &- UInt(bitPattern: range))
    guard offset >= 0, offset < GuardedPool.rangeBytes(slots: pool.slotCount), (offset / 4096) % 2 == 1 else { return nil }
    return offset / 4096 / 2
  }
}

@Suite(.serialized)
struct GuardedPoolTests {
  @Test("one allocation in N of a size class is sampled; aligned allocations and object caches count apart")
  func samplingInterval() throws {
    let machine = try PoolMachine(slots: 64, interval: 3)
    for index in 1...30 {
      let pointer = try #require(machine.heap.allocate(40))
      #expect(machine.pool.contains(UInt(bitPattern: pointer)) == (index % 3 == 0), "allocation \(index)")
    }
    // Another size class has a count of its own, as have aligned blocks and each cache.
    let other = (1...3).map { _ in machine.heap.allocate(700)! }
    #expect(other.map { machine.pool.contains(UInt(bitPattern: $0)) } == [false, false, true])
    let aligned = (1...3).map { _ in machine.heap.allocate(100, alignment: 256)! }
    #expect(aligned.map { machine.pool.contains(UInt(bitPattern: $0)) } == [false, false, true])
    #expect(aligned.allSatisfy { UInt(bitPattern: $0) % 256 == 0 })
    let cache = try #require(ObjectCache(heap: machine.heap, objectSize: 72))
    let objects = (1...3).map { _ in cache.allocate()! }
    #expect(objects.map { machine.pool.contains(UInt(bitPattern: $0)) } == [false, false, true])
    #expect(machine.pool.statistics.sampled == 13)
    // Paused, nothing is sampled; at 2, every second allocation of a class, object
    // caches made before included.
    #expect(machine.heap.setSamplingInterval(0))
    for _ in 0..<20 { #expect(!machine.pool.contains(UInt(bitPattern: machine.heap.allocate(40)!))) }
    #expect(!machine.pool.contains(UInt(bitPattern: cache.allocate()!)))
    #expect(machine.heap.setSamplingInterval(2) && !machine.heap.setSamplingInterval(-1))
    #expect((1...6).map { _ in machine.pool.contains(UInt(bitPattern: machine.heap.allocate(40)!)) } == [false, true, false, true, false, true])
    #expect((1...4).map { _ in machine.pool.contains(UInt(bitPattern: cache.allocate()!)) } == [false, true, false, true])
    // The pool's own per-CPU count, for allocators without one: every third call.
    #expect((1...6).map { _ in machine.pool.shouldSample(cpu: 0) } == [false, false, true, false, false, true])
  }

  @Test("objects sit flush with the page's end in even slots, at its start in odd ones, and are usable end to end")
  func placement() throws {
    let machine = try PoolMachine(slots: 32, interval: 1)
    var pooled: [UnsafeMutableRawPointer] = []
    for index in 1...30 {
      let size = 1 + (index * 137) % 4096
      let pointer = try #require(machine.heap.allocate(size))
      let slot = try #require(machine.slot(of: pointer))
      pooled.append(pointer)
      let address = UInt(bitPattern: pointer)
      if slot % 2 == 0 {
        #expect(address + UInt((size + 15) & ~15) == machine.page(slot) + 4096)
      } else {
        #expect(address == machine.page(slot))
      }
      #expect(address % 16 == 0)
      #expect(try machine.heap.usableSize(pointer) == size)
      #expect(machine.recorder.accessible.contains(machine.page(slot)))
      // The object is writable end to end (a real mapping).
      memset(pointer, 0x5a, size)
    }
    #expect(machine.pool.statistics.live == 30)
    for pointer in pooled { try machine.heap.deallocate(pointer) }
    #expect(machine.recorder.accessible.isEmpty && machine.recorder.fatalCalls == 0 && machine.pool.statistics.live == 0)
    #expect(machine.heap.check() == nil)
  }

  @Test("freed slots are reused first in, first out, after every other slot")
  func quarantineOrder() throws {
    let machine = try PoolMachine(slots: 4, interval: 1)
    // The model: a queue of slots, all in order at first; a free appends.
    var queue = [0, 1, 2, 3]
    var live: [(UnsafeMutableRawPointer, Int)] = []
    var rng = SystemRandomNumberGenerator()
    for _ in 0..<200 {
      if live.isEmpty || (live.count < 4 && Bool.random(using: &rng)) {
        let pointer = try #require(machine.heap.allocate(24))
        let slot = try #require(machine.slot(of: pointer))
        #expect(slot == queue.removeFirst())
        live.append((pointer, slot))
      } else {
        let (pointer, slot) = live.remove(at: Int.random(in: 0..<live.count, using: &rng))
        try machine.heap.deallocate(pointer)
        #expect(!machine.recorder.accessible.contains(machine.page(slot)))
        queue.append(slot)
      }
    }
    // All four slots live: the next allocation comes from the heap.
    while live.count < 4 {
      let pointer = try #require(machine.heap.allocate(24))
      live.append((pointer, try #require(machine.slot(of: pointer))))
    }
    let fallback = try #require(machine.heap.allocate(24))
    #expect(!machine.pool.contains(UInt(bitPattern: fallback)) && machine.pool.statistics.missed == 1)
    try machine.heap.deallocate(fallback)
    for (pointer, _) in live { try machine.heap.deallocate(pointer) }
    #expect(machine.heap.check() == nil)
  }

  @Test("a double, interior, guard-page or wrong-cache free is reported once and changes nothing")
  func badFrees() throws {
    let machine = try PoolMachine(slots: 8, interval: 1)
    let pointer = try #require(machine.heap.allocate(64))
    let slot = try #require(machine.slot(of: pointer))
    let cases: [(UnsafeMutableRawPointer, String)] = [
      (pointer + 16, "kfence-invalid-free: invalid free of 0x\(String(UInt(bitPattern: pointer) + 16, radix: 16)): byte 16 of the 64-byte object"),
      (UnsafeMutableRawPointer(bitPattern: machine.page(slot) - 4096 + 64)!, "kfence-invalid-free: invalid free of"),
    ]
    for (bad, expected) in cases {
      machine.recorder.text = []
      let before = machine.recorder.fatalCalls
      try machine.heap.deallocate(bad)
      #expect(machine.recorder.fatalCalls == before + 1)
      #expect(machine.recorder.report.hasPrefix(expected), "\(machine.recorder.report)")
      #expect(machine.recorder.accessible.contains(machine.page(slot)) && machine.pool.statistics.live == 1)
    }
    // An object cache's free of a kmalloc pool object.
    let cache = try #require(ObjectCache(heap: machine.heap, objectSize: 64))
    machine.recorder.text = []
    try cache.free(pointer)
    #expect(machine.recorder.report.hasPrefix("kfence-invalid-free:") && machine.pool.statistics.live == 1)
    // The real free, then a double free.
    try machine.heap.deallocate(pointer)
    #expect(machine.pool.statistics.live == 0 && !machine.recorder.accessible.contains(machine.page(slot)))
    machine.recorder.text = []
    let calls = machine.recorder.protectCalls
    try machine.heap.deallocate(pointer)
    #expect(machine.recorder.report.hasPrefix("kfence-double-free: double free of 0x\(String(UInt(bitPattern: pointer), radix: 16)): the start of the freed 64-byte object"))
    #expect(machine.recorder.report.contains("  allocated on cpu ") && machine.recorder.report.contains("  freed on cpu "))
    #expect(machine.recorder.report.contains("backtrace: 0x1000 0x1001 0x1002"))
    #expect(machine.recorder.protectCalls == calls && machine.pool.statistics.live == 0)
    // The slot is still reusable afterwards.
    let again = try #require(machine.heap.allocate(64))
    try machine.heap.deallocate(again)
  }

  @Test("a write next to the object is found by the canary check on free, and the object stays live")
  func canary() throws {
    // The word the fill uses holds the bytes the check expects.
    for index in 0..<8 {
      #expect(UInt8(truncatingIfNeeded: GuardedPool.canaryWord >> UInt64(8 * index)) == GuardedPool.canaryByte(UInt(index)))
    }
    let machine = try PoolMachine(slots: 8, interval: 1)
    for (size, offset) in [(13, 13), (13, 15), (100, -1), (4000, 4000)] {
      let pointer = try #require(machine.heap.allocate(size))
      let slot = try #require(machine.slot(of: pointer))
      // Even slots have no room before the object; odd ones none after a 16-byte multiple.
      let page = machine.page(slot)
      let target = UInt(bitPattern: pointer) &+ UInt(bitPattern: offset)
      guard target >= page && target < page + 4096 else {
        try machine.heap.deallocate(pointer)
        continue
      }
      UnsafeMutablePointer<UInt8>(bitPattern: target)!.pointee ^= 0xff
      machine.recorder.text = []
      try machine.heap.deallocate(pointer)
      #expect(machine.recorder.report.hasPrefix("kfence-canary: canary bytes overwritten at 0x\(String(target, radix: 16)): "), "\(machine.recorder.report)")
      #expect(machine.pool.size(of: pointer) == size)
      UnsafeMutablePointer<UInt8>(bitPattern: target)!.pointee ^= 0xff
      machine.recorder.text = []
      try machine.heap.deallocate(pointer)
      #expect(machine.recorder.text.isEmpty && machine.pool.size(of: pointer) == nil)
    }
  }

  @Test("faults are classified by where they land: guard pages, freed slots, unused slots")
  func classification() throws {
    let machine = try PoolMachine(slots: 8, interval: 1)
    let right = try #require(machine.heap.allocate(40))  // slot 0: flush with the page's end (48 bytes)
    let left = try #require(machine.heap.allocate(40))  // slot 1: at the page's start
    #expect(machine.slot(of: right) == 0 && machine.slot(of: left) == 1)
    let r = UInt(bitPattern: right), l = UInt(bitPattern: left)
    func describe(_ address: UInt, write: Bool) -> (GuardedPoolReport.Kind, Int?, UInt?)? {
      guard let report = machine.pool.describeFault(at: address, isWrite: write) else { return nil }
      return (report.kind, report.offset, report.object?.address)
    }
    // Past the right object's aligned end: the guard page after slot 0.
    #expect(describe(r + 48, write: true)! == (.outOfBoundsWrite, 48, r))
    // Just before the left object: the guard page between, nearer to slot 1's object.
    #expect(describe(l - 1, write: false)! == (.outOfBoundsRead, -1, l))
    // The first guard page has slot 0 to its right.
    #expect(describe(UInt(bitPattern: machine.range), write: false)!.0 == .outOfBoundsRead)
    // Slot 2 was never used, nor the guards around it but for its neighbours'.
    #expect(describe(machine.page(2) + 8, write: true)!.0 == .invalidAccess)
    try machine.heap.deallocate(right)
    #expect(describe(r + 8, write: true)! == (.useAfterFreeWrite, 8, r))
    #expect(describe(r, write: false)! == (.useAfterFreeRead, 0, r))
    #expect(describe(UInt(bitPattern: machine.range) - 1, write: false) == nil)
    #expect(describe(UInt(bitPattern: machine.range) + UInt(GuardedPool.rangeBytes(slots: 8)), write: false) == nil)
    machine.recorder.text = []
    #expect(machine.pool.reportFault(at: r + 8, isWrite: true))
    #expect(machine.recorder.report.hasPrefix("kfence-uaf-write: use-after-free write at 0x\(String(r + 8, radix: 16)): byte 8 of the freed 40-byte object at 0x\(String(r, radix: 16)) (kmalloc, slot 0)\n"))
    try machine.heap.deallocate(left)
  }

  @Test("reallocate moves a pool object's bytes; object caches are sampled and freed through their cache")
  func reallocateAndCaches() throws {
    let machine = try PoolMachine(slots: 8, interval: 1)
    let pointer = try #require(machine.heap.allocate(100))
    for index in 0..<100 { pointer.storeBytes(of: UInt8(index), toByteOffset: index, as: UInt8.self) }
    let moved = try #require(try machine.heap.reallocate(pointer, to: 3000))
    for index in 0..<100 { #expect(moved.load(fromByteOffset: index, as: UInt8.self) == UInt8(index)) }
    #expect(machine.pool.size(of: pointer) == nil && machine.pool.size(of: moved) == 3000)
    #expect(try machine.heap.reallocate(moved, to: 0) == nil)
    let cache = try #require(ObjectCache(heap: machine.heap, objectSize: 200, alignment: 64))
    let object = try #require(cache.allocate())
    #expect(machine.pool.contains(UInt(bitPattern: object)) && UInt(bitPattern: object) % 64 == 0)
    machine.recorder.text = []
    try machine.heap.deallocate(object)
    #expect(machine.recorder.report.hasPrefix("kfence-invalid-free:") && machine.pool.size(of: object) == 200)
    // The cache is in use while its pool object is live.
    #expect(throws: HeapError(.cacheInUse, UInt(bitPattern: cache.cache.address))) { try cache.destroy() }
    try cache.free(object)
    #expect(machine.pool.statistics.live == 0)
    try cache.destroy()
    #expect(machine.recorder.fatalCalls == 1)
  }
}
