import KernelMemory
import Glibc
import KernelHeap
import MemInit
import PageFrames
import Scenarios

@inline(__always) func now() -> UInt64 {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func median(_ values: [Double]) -> Double {
  let sorted = values.sorted()
  return sorted[sorted.count / 2]
}

/// The tests' deterministic generator, with the two helpers the traces use.
typealias Rng = SplitMix
extension SplitMix {
  init(state: UInt64) { self.init(seed: state) }
  mutating func range(_ lo: Int, _ hi: Int) -> Int { inRange(lo..<hi) }
}

let arenaBytes = 1 << 20

/// 1. LIFO micro: alloc+free of one size, ns per pair.
func lifo<A: BenchAllocator>(_ allocator: inout A, size: Int, iterations: Int) -> Double {
  let start = now()
  for _ in 0..<iterations {
    let p = allocator.allocate(size)!
    allocator.free(p)
  }
  return Double(now() - start) / Double(iterations)
}

/// A talc-style trace: (slot, size) where size > 0 allocates into the slot and 0 frees it.
struct Trace {
  var steps: [(slot: Int, size: Int)] = []
  var slots = 0
}

/// Sizes rand(4 ..< rand(16 ..< max)); alloc and free 1:1 once 64 blocks are live.
func randomTrace(max: Int, operations: Int, seed: UInt64) -> Trace {
  var rng = Rng(state: seed)
  var trace = Trace()
  var live: [Int] = []
  var freeSlots: [Int] = []
  for _ in 0..<operations {
    if live.count < 64 || rng.below(2) == 0 {
      let size = rng.range(4, rng.range(16, max))
      let slot = freeSlots.popLast() ?? { trace.slots += 1; return trace.slots - 1 }()
      live.append(slot)
      trace.steps.append((slot, size))
    } else {
      let index = rng.below(live.count)
      let slot = live.remove(at: index)
      freeSlots.append(slot)
      trace.steps.append((slot, 0))
    }
  }
  return trace
}

/// 2. Replays a trace; ns per operation.
func replay<A: BenchAllocator>(_ allocator: inout A, _ trace: Trace) -> Double {
  let slots = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: trace.slots)
  slots.initialize(repeating: nil, count: trace.slots)
  defer { slots.deallocate() }
  let start = now()
  for step in trace.steps {
    if step.size > 0 {
      slots[step.slot] = allocator.allocate(step.size)
    } else if let p = slots[step.slot] {
      allocator.free(p)
      slots[step.slot] = nil
    }
  }
  let elapsed = now() - start
  for i in 0..<trace.slots { if let p = slots[i] { allocator.free(p) } }
  return Double(elapsed) / Double(trace.steps.count)
}

/// 3. Heap efficiency: live requested bytes / arena at the first failed allocation,
/// with 80% allocations and 20% frees.
func efficiency<A: BenchAllocator>(_ allocator: inout A, max: Int, seed: UInt64) -> Double {
  var rng = Rng(state: seed)
  var live: [(UnsafeMutableRawPointer, Int)] = []
  var requested = 0
  while true {
    if live.isEmpty || rng.below(10) < 8 {
      let size = rng.range(4, rng.range(16, max))
      guard let p = allocator.allocate(size) else { break }
      live.append((p, size))
      requested += size
    } else {
      let (p, size) = live.remove(at: rng.below(live.count))
      allocator.free(p)
      requested -= size
    }
  }
  for (p, _) in live { allocator.free(p) }
  return Double(requested) / Double(arenaBytes)
}

/// 4. Scaling: alloc+free of a size that fits no hole, with `holes` free holes present.
func scaling<A: BenchAllocator>(_ allocator: inout A, holes: Int, iterations: Int) -> Double {
  var blocks: [UnsafeMutableRawPointer] = []
  for _ in 0..<(2 * holes) { blocks.append(allocator.allocate(48)!) }
  for i in stride(from: 0, to: blocks.count, by: 2) { allocator.free(blocks[i]) }
  let start = now()
  for _ in 0..<iterations {
    let p = allocator.allocate(2000)!
    allocator.free(p)
  }
  let elapsed = now() - start
  for i in stride(from: 1, to: blocks.count, by: 2) { allocator.free(blocks[i]) }
  return Double(elapsed) / Double(iterations)
}

/// Simulated RAM at 0x40000000 (an untouched mapping) and memInit's configuration over
/// it: a kernel at +2 MiB, then the page array, the 1 MiB heap and free pages.
final class SimulatedMachine {
  static let base: UInt = 0x4000_0000
  let ram: UnsafeMutableRawPointer
  let bytes: Int
  let config: MemInitConfig
  init(bytes: Int) {
    self.bytes = bytes
    ram = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)!
    let base = SimulatedMachine.base
    config = MemInitConfig(
      ramBase: base, ramSize: UInt(bytes), kernelStart: base + 0x20_0000, kernelEnd: base + 0x22_0000,
      directMapOffset: Int(bitPattern: ram) - Int(bitPattern: base), zeroFill: benchZeroFill)
  }
  deinit { munmap(ram, bytes) }
}

/// 5a. Page frames over simulated RAM (never touched when not zeroing).
func simulatedFrames(_ machine: SimulatedMachine) -> PageFrameAllocator {
  try! buildPageFrames(machine.config, try! planLayout(machine.config))
}

/// memInit's page-frame work (layout, bzero of the array, reservations, free lists), ms.
func memInitMilliseconds(bytes: Int) -> Double {
  let machine = SimulatedMachine(bytes: bytes)
  // Touch the array's pages once so the figure is the work, not the host's page faults.
  let layout = try! planLayout(machine.config)
  memset(machine.ram + Int(layout.metadataStart - SimulatedMachine.base), 1, Int(layout.metadataEnd - layout.metadataStart))
  let start = now()
  let frames = try! buildPageFrames(machine.config, layout)
  let heap = Heap(start: machine.ram + Int(layout.heapStart - SimulatedMachine.base), size: 1 << 20, zeroFill: benchZeroFill, frames: frames)
  let elapsed = now() - start
  precondition(heap != nil && frames.freePageCount > 0)
  withExtendedLifetime(machine) {}
  return Double(elapsed) / 1e6
}

/// memInit's page-frame work over firmware-described RAM ranges `(offset, bytes)` from
/// 0x40000000 (the kernel in the first), ms: layout around reservations, the array's
/// bzero, reservations, free lists, heapInit.
func memInitRangesMilliseconds(ranges: [(UInt, UInt)]) -> Double {
  let span = Int(ranges.map { $0.0 + $0.1 }.max()!)
  let machine = SimulatedMachine(bytes: span)
  var memory = BootMemory()
  for (offset, bytes) in ranges { try! memory.addRAM(start: SimulatedMachine.base + offset, size: bytes) }
  try! memory.reserve(start: SimulatedMachine.base, end: SimulatedMachine.base + 0x2345, as: .deviceTree)
  let config = MemInitConfig(
    memory: memory, kernelStart: SimulatedMachine.base + 0x20_0000, kernelEnd: SimulatedMachine.base + 0x22_0000,
    directMapOffset: machine.config.directMapOffset, zeroFill: benchZeroFill)
  let layout = try! planLayout(config)
  memset(machine.ram + Int(layout.metadataStart - SimulatedMachine.base), 1, Int(layout.metadataEnd - layout.metadataStart))
  let start = now()
  let again = try! planLayout(config)
  let frames = try! buildPageFrames(config, again)
  let heap = Heap(start: machine.ram + Int(again.heapStart - SimulatedMachine.base), size: 1 << 20, zeroFill: benchZeroFill, frames: frames)
  let elapsed = now() - start
  precondition(heap != nil && frames.freePageCount > 0)
  withExtendedLifetime(machine) {}
  return Double(elapsed) / 1e6
}

/// One growth workload over a fresh simulated machine of `bytes` bytes of RAM.
func growthOutcome(_ workload: GrowthWorkload, bytes: Int) -> GrowthOutcome {
  let machine = SimulatedMachine(bytes: bytes)
  let memory = try! KernelMemory(machine.config, layout: try! planLayout(machine.config))
  guard let frames = memory.frames, let heap = memory.heap else { fatalError("growth: machine not set up") }
  let outcome = runGrowthWorkload(workload, frames: frames, heap: heap, seed: 11)
  withExtendedLifetime(machine) {}
  return outcome
}
