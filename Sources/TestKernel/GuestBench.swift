// `make bench-qemu`: guest instructions per operation, counted with QEMU's
// `-icount shift=0` (one virtual nanosecond per instruction, deterministic). Each figure
// includes its loop's few instructions of overhead.
#if os(none)
import KernelMemory
import Arch
import ArchSupport
import KernelBoot
import KernelHeap
import Scenarios

/// Prints `bench <name>: <instructions per op> instructions/op (<ops> ops)`.
func reportBench(_ name: StaticString, instructions: UInt64, operations: Int) {
  kput("bench ")
  kput(name)
  kput(": ")
  kputDecimal(UInt((instructions + UInt64(operations / 2)) / UInt64(operations)))
  kput(" instructions/op (")
  kputDecimal(UInt(operations))
  kput(" ops)\n")
}

/// Runs `body` `operations` times' worth (body does the loop) and reports the count.
func measure(_ name: StaticString, operations: Int, _ body: () -> Void) {
  let start = Clock.ticks
  body()
  reportBench(name, instructions: Clock.nanoseconds(since: start), operations: operations)
}

func guestBench() {
  kput("guest bench: -icount shift=0, counter ")
  kputDecimal(UInt(Clock.frequency))
  kput(" Hz\n")
  reportBench("memInit at boot", instructions: bootMemInitNanoseconds, operations: 1)

  let pairs = 10_000
  measure("kmalloc+kfree 16 B", operations: pairs) {
    for _ in 0..<pairs { kfree(kmalloc(16)) }
  }
  measure("kmalloc+kfree 256 B", operations: pairs) {
    for _ in 0..<pairs { kfree(kmalloc(256)) }
  }
  measure("kmalloc+kfree 4096 B", operations: pairs) {
    for _ in 0..<pairs { kfree(kmalloc(4096)) }
  }

  // The host's random workload: sizes rand(4 ..< rand(16 ..< 1000)), alloc and free
  // 1:1 once 64 blocks are live. As on the host, the trace is made before the
  // measurement (a size to allocate, or the slot to free with `freeMark` set), so the
  // loop's count is the allocator's and the trace's read, not the generator's (whose
  // 64-bit constants the compiler keeps in registers or rebuilds in the loop as it likes).
  let operations = 20_000
  let freeMark: UInt32 = 1 << 31
  let trace = kmalloc(operations * 4)!.bindMemory(to: UInt32.self, capacity: operations)
  var rng = SplitMix(seed: 1000)
  var liveCount = 0
  for operation in 0..<operations {
    if liveCount < 64 || (liveCount < 512 && rng.below(2) == 0) {
      trace[operation] = UInt32(rng.inRange(4..<rng.inRange(16..<1000)))
      liveCount += 1
    } else {
      trace[operation] = freeMark | UInt32(rng.below(liveCount))
      liveCount -= 1
    }
  }
  // Slots hold the live pointers.
  let slots = kmalloc(512 * 8)!.bindMemory(to: UnsafeMutableRawPointer?.self, capacity: 512)
  slots.initialize(repeating: nil, count: 512)
  liveCount = 0
  measure("kmalloc/kfree random, max 1000 (per op)", operations: operations) {
    for operation in 0..<operations {
      let step = trace[operation]
      if step & freeMark == 0 {
        slots[liveCount] = kmalloc(Int(step))
        liveCount += 1
      } else {
        let index = Int(step & ~freeMark)
        kfree(slots[index])
        liveCount -= 1
        slots[index] = slots[liveCount]
      }
    }
  }
  kfree(UnsafeMutableRawPointer(trace))
  for index in 0..<liveCount { kfree(slots[index]) }
  kfree(UnsafeMutableRawPointer(slots))

  measure("allocPage+freePage (zeroed)", operations: pairs) {
    for _ in 0..<pairs { freePage(allocPage()!) }
  }
  let frames = bootFrames
  measure("allocPages+freePages order 0, not zeroed", operations: pairs) {
    for _ in 0..<pairs {
      let page = frames.allocPages(order: 0, zeroed: false)!
      try! frames.freePages(page, order: 0)
    }
  }

  let page = allocPage()!
  let zeroes = 1_000
  measure("bzero 4 KiB (assembly)", operations: zeroes) {
    for _ in 0..<zeroes { bzero(page, 4096) }
  }
  measure("byte loop 4 KiB (reference)", operations: zeroes) {
    for _ in 0..<zeroes { arch_zero_bytes(page, 4096) }
  }
  freePage(page)
  virtualMemoryBench()
}

/// The kernel map's costs: a 4 KiB map+unmap pair with its TLBI, a 512-page unmap (one
/// full flush), vmalloc+vfree of 16 KiB, and building a kernel map for 4 GiB of RAM.
func virtualMemoryBench() {
  guard let space = kernelAddressSpace, let frame = allocPage() else {
    kput("bench vm: no kernel map\n")
    return
  }
  reportBench("vm kernel map at boot", instructions: bootKernelMapNanoseconds, operations: 1)
  let physical = space.frames.physical(of: frame)
  let vmStressBase = vmStressBase
  let pairs = 10_000
  // With a neighbour mapped, so the page's tables stay: the steady state of a mapping
  // area (vmalloc, stacks).
  try? space.map(vmStressBase + 4096, physical, pages: 1, .kernelData)
  measure("vm map+unmap 4 KiB, tables kept (TLBI VAE1IS)", operations: pairs) {
    for _ in 0..<pairs {
      try? space.map(vmStressBase, physical, pages: 1, .kernelData)
      _ = try? space.unmap(vmStressBase, pages: 1)
    }
  }
  // The halves of the pair: 256 maps of distinct pages of that table, then their 256
  // unmaps (each with its TLBI), and a translate (the lock and a walk).
  let halves = 256
  measure("vm map 4 KiB, tables kept", operations: halves) {
    for page in 0..<halves { try? space.map(vmStressBase + UInt(2 + page) << 12, physical, pages: 1, .kernelData) }
  }
  measure("vm unmap 4 KiB, tables kept (TLBI VAE1IS)", operations: halves) {
    for page in 0..<halves { _ = try? space.unmap(vmStressBase + UInt(2 + page) << 12, pages: 1) }
  }
  var found: UInt = 0
  measure("vm translate", operations: pairs) {
    for _ in 0..<pairs { found &+= space.translate(vmStressBase + 4096)?.physical ?? 0 }
  }
  if found == 0 { kput("bench vm translate: nothing mapped\n") }
  _ = try? space.unmap(vmStressBase + 4096, pages: 1)
  // Alone in its tables: each pair also links three tables (from the space's pool) and
  // empties them again.
  measure("vm map+unmap 4 KiB, lone page (3 tables)", operations: pairs) {
    for _ in 0..<pairs {
      try? space.map(vmStressBase, physical, pages: 1, .kernelData)
      _ = try? space.unmap(vmStressBase, pages: 1)
    }
  }
  freePage(frame)

  // 512 pages at a VA that is not 2 MiB aligned: 512 page descriptors, one unmap call.
  let flushesBefore = space.statistics.fullFlushes
  var unmapInstructions: UInt64 = 0
  if let run = allocContiguous(pages: 512) {
    try? space.map(vmStressBase + 4096, space.frames.physical(of: run), pages: 512, .kernelData)
    let start = Clock.ticks
    _ = try? space.unmap(vmStressBase + 4096, pages: 512)
    unmapInstructions = Clock.nanoseconds(since: start)
    freeContiguous(run, pages: 512)
  }
  reportBench("vm unmap 512 pages", instructions: unmapInstructions, operations: 1)
  kput("bench vm full flushes per 512-page unmap: ")
  kputDecimal(UInt(space.statistics.fullFlushes - flushesBefore))
  kput(" full flushes/op (1 ops)\n")

  let areas = 1_000
  measure("vm vmalloc+vfree 16 KiB", operations: areas) {
    for _ in 0..<areas { vfree(vmalloc(16 << 10)) }
  }

  // A kernel map for 4 GiB of RAM from 1 GiB (as virt's -m 4G lays it out): the
  // image's sections, the direct map around them, the UART; built, then given back.
  let image = BoardPlatform().kernelImage
  let start = Clock.ticks
  if let map = try? AddressSpace(frames: space.frames, maintenance: .hosted, format: space.format) {
    let storage = UnsafeMutablePointer<KernelMapRegion>.allocate(capacity: 16)
    defer { storage.deallocate() }
    var regions = KernelMapRegions(storage: storage, capacity: 16)
    BoardPlatform().kernelImageRegions(into: &regions)
    regions.append(KernelMapRegion(start: 0x4000_0000, end: image.start & ~0x1f_ffff, attributes: .kernelData, name: "direct map"))
    regions.append(KernelMapRegion(start: image.end, end: 0x1_4000_0000, attributes: .kernelData, name: "direct map"))
    regions.append(KernelMapRegion(start: 0x0900_0000, end: 0x0900_1000, attributes: .kernelDevice, name: "device"))
    try? map.map(regions)
    reportBench("vm kernel map for 4 GiB (build)", instructions: Clock.nanoseconds(since: start), operations: 1)
    map.destroy()
  }
}

#endif
