// `make bench ONLY=exhaustion`: how much of a machine's RAM is still free when a
// request first fails, and the largest run it could still hand out. Over a fresh
// simulated machine of 512 MiB each (memInit's layout, kmalloc with every check on).
import KernelMemory
import Glibc

/// RAM at the first failed request.
struct ExhaustionOutcome {
  /// Free pages (after the caches are drained) × 4096 ÷ the machine's RAM, percent.
  var freePercent: Double
  /// The largest free buddy block after the drain, KiB.
  var largestFreeRunKiB: Double
}

/// The machine's RAM for the exhaustion rows.
let exhaustionMachineBytes = 512 << 20

/// Drains the heap's cached slabs and every CPU's hot pages back to the free lists
/// (so pages parked in a per-CPU cache count as free and can merge), then reads the
/// page-frame statistics.
func exhaustionOutcome(_ memory: borrowing KernelMemory) -> ExhaustionOutcome {
  memory.drainCaches()
  let frames = memory.frames!
  let ramBytes = Double(frames.pageCount * Page.size)
  return ExhaustionOutcome(
    freePercent: 100 * Double(frames.freePageCount * Page.size) / ramBytes,
    largestFreeRunKiB: Double(frames.largestFreeRun * Page.size) / 1024)
}

/// A fresh machine of `exhaustionMachineBytes`, its memory object, and `body`'s result.
func withExhaustionMachine<R>(_ body: (borrowing KernelMemory) -> R) -> R {
  let machine = SimulatedMachine(bytes: exhaustionMachineBytes)
  let memory = try! KernelMemory(machine.config, layout: try! planLayout(machine.config))
  precondition(memory.frames!.pageCount * Page.size == exhaustionMachineBytes)
  let result = body(memory)
  withExtendedLifetime(machine) {}  // its RAM stays mapped until here
  return result
}

/// (a) kmalloc(3 MiB) repeated until it returns nil. Each is a large allocation (above
/// `Heap.largeRequestThreshold`): 768 pages, taken from the smallest buddy block that
/// holds them (1024 pages) with the tail given back.
func repeatedLargeExhaustion(bytes: Int = 3 << 20) -> ExhaustionOutcome {
  withExhaustionMachine { memory in
    let heap = memory.heap!
    while heap.allocate(bytes) != nil {}
    return exhaustionOutcome(memory)
  }
}

/// (b) Random requests until the first one fails, with a fixed seed: each operation
/// allocates with probability 0.6 (so the live set grows until RAM runs out) and
/// otherwise frees a live allocation picked uniformly. One allocation in eight is an
/// order-1 page run (`frames.allocPages(order: 1, zeroed: false)`), the others are
/// kmalloc of a size uniform (linear) in 16 B ... 400 KiB: slab objects, TLSF blocks
/// and, above 128 KiB, page runs of their own. The first nil from either ends it.
func mixedExhaustion(seed: UInt64) -> ExhaustionOutcome {
  withExhaustionMachine { memory in
    let heap = memory.heap!, frames = memory.frames!
    var rng = Rng(state: seed)
    var live: [(pointer: UnsafeMutableRawPointer, isPageRun: Bool)] = []
    while true {
      if live.isEmpty || rng.below(10) < 6 {
        if rng.below(8) == 0 {
          guard let run = frames.allocPages(order: 1, owner: .allocated, zeroed: false) else { break }
          live.append((run, true))
        } else {
          guard let block = heap.allocate(rng.range(16, (400 << 10) + 1)) else { break }
          live.append((block, false))
        }
      } else {
        let index = rng.below(live.count)
        let (pointer, isPageRun) = live[index]
        live[index] = live[live.count - 1]
        live.removeLast()
        if isPageRun { try! frames.freePages(pointer, order: 1) } else { try! heap.deallocate(pointer) }
      }
    }
    return exhaustionOutcome(memory)
  }
}
