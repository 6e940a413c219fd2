import KernelHeap
import PageFrames

/// A 1 MiB heap at the start of the scenario memory (the kernel heap's size).
func makeHeap(_ memory: ScenarioMemory, bytes: Int = 1 << 20) -> Heap {
  Heap(start: memory.base, size: bytes, zeroFill: memory.zeroFill)!
}

func address(_ pointer: UnsafeMutableRawPointer?) -> UInt { UInt(bitPattern: pointer) }

/// The heap is one free block again and passes heapCheck.
func expectPristine(_ heap: Heap, _ e: inout Expectations, _ message: StaticString) {
  let stats = heap.statistics
  e.expect(heap.check() == nil, message, address(heap.check().map { UnsafeMutableRawPointer(bitPattern: $0.address) } ?? nil))
  e.expect(stats.allocatedBlocks == 0 && stats.freeBlocks == stats.arenas, message, UInt(stats.freeBlocks))
  e.expect(stats.usedBytes == 0, message, UInt(stats.usedBytes))
}

/// Freeing `pointer` throws `reason`. No heapCheck: callers that damaged a header on
/// purpose check after repairing it.
func expectFreeThrows(
  _ heap: Heap, _ pointer: UnsafeMutableRawPointer?, _ reason: HeapError.Reason, _ e: inout Expectations,
  _ message: StaticString, detail: UInt
) {
  do throws(HeapError) {
    try heap.deallocate(pointer)
    e.expect(false, message, detail)
  } catch {
    e.expect(error.reason == reason, message, detail)
  }
}

/// Freeing `pointer` throws `reason` and leaves the heap passing heapCheck.
func expectRefused(_ heap: Heap, _ pointer: UnsafeMutableRawPointer?, _ reason: HeapError.Reason, _ e: inout Expectations, _ message: StaticString) {
  expectFreeThrows(heap, pointer, reason, &e, message, detail: address(pointer))
  e.expect(heap.check() == nil, message, address(pointer))
}

func heapScenarios() -> [Scenario] {
  [
    Scenario("heap.alloc_free_cycle") { memory, e in
      let heap = makeHeap(memory)
      let before = heap.statistics
      for size in [1, 16, 24, 100, 1000, 4096, 65536] {
        let p = heap.allocate(size)
        e.expect(p != nil, "allocate returned nil", UInt(size))
        e.expect(try! heap.usableSize(p!) >= size, "usable size below request", UInt(size))
        p!.initializeMemory(as: UInt8.self, repeating: 0xAB, count: size)
        e.expect(heap.check() == nil, "heapCheck after allocate", UInt(size))
        try? heap.deallocate(p)
        let after = heap.statistics
        e.expect(after.usedBytes == before.usedBytes && after.freeBytes == before.freeBytes
          && after.freeBlocks == before.freeBlocks && after.allocatedBlocks == 0, "statistics differ after free", UInt(size))
        e.expect(after.peakUsedBytes >= size, "peak records the allocation", UInt(size))
      }
      expectPristine(heap, &e, "heap not pristine after cycle")
    },
    Scenario("heap.out_of_memory") { memory, e in
      let heap = makeHeap(memory)
      var blocks: [UnsafeMutableRawPointer] = []
      while let p = heap.allocate(4000) { blocks.append(p) }
      e.expect(blocks.count > 200, "too few 4000-byte blocks in 1 MiB", UInt(blocks.count))
      e.expect(heap.allocate(4000) == nil, "allocation after exhaustion", 0)
      e.expect(heap.check() == nil, "heapCheck after exhaustion", 0)
      for p in blocks { try? heap.deallocate(p) }
      expectPristine(heap, &e, "heap not pristine after freeing everything")
      e.expect(heap.allocate(900 << 10) != nil, "large block after coalescing", 0)
    },
    Scenario("heap.split") { memory, e in
      let heap = makeHeap(memory)
      let whole = heap.statistics.freeBytes
      let p = heap.allocate(100)!
      let stats = heap.statistics
      e.expect(stats.freeBlocks == 1 && stats.allocatedBlocks == 1, "split must leave one free block", UInt(stats.freeBlocks))
      e.expect(stats.usedBytes == 112, "100 bytes take a 112-byte payload", UInt(stats.usedBytes))
      e.expect(stats.freeBytes == whole - 112 - 16, "remainder = whole - block", UInt(stats.freeBytes))
      try? heap.deallocate(p)
      expectPristine(heap, &e, "split block did not merge back")
    },
    Scenario("heap.coalesce_left_right_both_last") { memory, e in
      let heap = makeHeap(memory)
      // Fill the heap exactly, so the last block is the arena's last segment.
      let a = heap.allocate(64)!, b = heap.allocate(64)!, c = heap.allocate(64)!, d = heap.allocate(64)!
      let rest = heap.statistics.largestFreeBlock
      let last = heap.allocate(rest)!
      e.expect(heap.statistics.freeBlocks == 0, "heap should be full", UInt(heap.statistics.freeBlocks))
      try? heap.deallocate(a)  // no free neighbour
      try? heap.deallocate(b)  // coalesce left with a
      e.expect(heap.statistics.freeBlocks == 1, "left coalesce", UInt(heap.statistics.freeBlocks))
      try? heap.deallocate(d)  // no free neighbour (c and last allocated)
      try? heap.deallocate(c)  // coalesce both ways: ab + c + d
      e.expect(heap.statistics.freeBlocks == 1, "coalesce both ways", UInt(heap.statistics.freeBlocks))
      let f = heap.allocate(16)!  // re-split the merged block at the front
      try? heap.deallocate(last)  // last segment: right neighbour is the sentinel
      e.expect(heap.check() == nil, "heapCheck after freeing the last segment", 0)
      let before = heap.statistics.freeBlocks
      try? heap.deallocate(f)  // coalesce right into the merged run
      e.expect(heap.statistics.freeBlocks <= before, "right coalesce", UInt(heap.statistics.freeBlocks))
      expectPristine(heap, &e, "heap not one block after all frees")
    },
    Scenario("heap.alignment") { memory, e in
      let heap = makeHeap(memory)
      var live: [UnsafeMutableRawPointer] = []
      for size in 0...300 {
        let p = heap.allocate(size)!
        e.expect(address(p) & 15 == 0, "payload not 16-byte aligned", UInt(size))
        live.append(p)
      }
      var alignment = 32
      while alignment <= 4096 {
        for size in [1, 100, 5000] {
          let p = heap.allocate(size, alignment: alignment)
          e.expect(p != nil && address(p) & UInt(alignment - 1) == 0, "aligned allocation", UInt(alignment))
          e.expect(heap.check() == nil, "heapCheck after aligned allocation", UInt(alignment))
          if let p { live.append(p) }
        }
        alignment <<= 1
      }
      e.expect(heap.allocate(10, alignment: 3) == nil && heap.allocate(10, alignment: 8192) == nil, "bad alignment must be refused", 0)
      for p in live { try? heap.deallocate(p) }
      expectPristine(heap, &e, "heap not pristine after aligned frees")
    },
    Scenario("heap.zero_size_and_nil") { memory, e in
      let heap = makeHeap(memory)
      let a = heap.allocate(0), b = heap.allocate(0)
      e.expect(a != nil && b != nil && a != b, "allocate(0) gives distinct minimum blocks", 0)
      e.expect((try? heap.usableSize(a!)) == 16, "allocate(0) has 16 usable bytes", 0)
      do throws(HeapError) {
        try heap.deallocate(nil)
      } catch {
        e.expect(false, "deallocate(nil) must do nothing", UInt(error.reason.rawValue))
      }
      try? heap.deallocate(a)
      try? heap.deallocate(b)
      expectPristine(heap, &e, "heap not pristine after zero-size frees")
    },
    Scenario("heap.bad_frees") { memory, e in
      let heap = makeHeap(memory)
      let p = heap.allocate(200)!
      let q = heap.allocate(200)!
      expectRefused(heap, p + 8, .misaligned, &e, "misaligned pointer")
      expectRefused(heap, p + 32, .corruptHeader, &e, "interior pointer")
      expectRefused(heap, memory.base + (2 << 20), .outsideHeap, &e, "foreign pointer above the heap")
      expectRefused(heap, memory.base, .outsideHeap, &e, "pointer into the control block")
      try? heap.deallocate(p)
      expectRefused(heap, p, .doubleFree, &e, "double free")
      try? heap.deallocate(q)  // q merges into free p (and the tail): q's header is absorbed
      expectRefused(heap, p, .doubleFree, &e, "double free of the merged block")
      expectRefused(heap, q, .doubleFree, &e, "double free of an absorbed block")
      expectPristine(heap, &e, "refused frees changed the heap")
    },
    Scenario("heap.header_byte_flips") { memory, e in
      let heap = makeHeap(memory)
      let a = heap.allocate(48)!
      let p = heap.allocate(48)!
      let header = (p - 16).assumingMemoryBound(to: UInt8.self)
      for byte in 0..<16 {
        for mask: UInt8 in [0x01, 0x80, 0xFF] {
          header[byte] ^= mask
          expectFreeThrows(heap, p, .corruptHeader, &e, "a flipped header byte must read as a bad header", detail: UInt(byte))
          header[byte] ^= mask
          e.expect(heap.check() == nil, "heap changed by a refused free", UInt(byte))
        }
      }
      try? heap.deallocate(p)
      try? heap.deallocate(a)
      expectPristine(heap, &e, "heap not pristine after header tests")
    },
    Scenario("heap.corrupt_neighbours") { memory, e in
      // p | q | r | s | tail: each neighbour that a free of r would read is damaged in turn.
      let heap = makeHeap(memory)
      let p = heap.allocate(32)!, q = heap.allocate(32)!, r = heap.allocate(32)!, s = heap.allocate(32)!
      let flips: [(header: UnsafeMutableRawPointer, what: StaticString)] = [
        (s - 16, "allocated right neighbour's header damaged"),
        (q - 16, "free left neighbour's header damaged"),
      ]
      try? heap.deallocate(q)
      for (header, what) in flips {
        let bytes = header.assumingMemoryBound(to: UInt8.self)
        for byte in 0..<16 {
          bytes[byte] ^= 0x40
          expectFreeThrows(heap, r, .corruptNeighbour, &e, what, detail: UInt(byte))
          bytes[byte] ^= 0x40
          e.expect(heap.check() == nil, "a refused free changed the heap", UInt(byte))
        }
      }
      // An overflow out of p that rewrites q's size with a consistent check is still caught:
      // q no longer ends where r begins.
      let qHeader = q - 16
      let saved = (qHeader.load(as: UInt64.self), qHeader.load(fromByteOffset: 12, as: UInt32.self))
      let grown = saved.0 + 64
      qHeader.storeBytes(of: grown, as: UInt64.self)
      qHeader.storeBytes(of: saved.1 ^ UInt32(truncatingIfNeeded: saved.0 ^ grown), toByteOffset: 12, as: UInt32.self)
      expectFreeThrows(heap, r, .corruptNeighbour, &e, "a resealed oversized left neighbour must read as corruptNeighbour", detail: address(r))
      qHeader.storeBytes(of: saved.0, as: UInt64.self)
      qHeader.storeBytes(of: saved.1, toByteOffset: 12, as: UInt32.self)
      e.expect(heap.check() == nil, "refused frees changed the heap", 0)
      for pointer in [r, p, s] { try? heap.deallocate(pointer) }
      expectPristine(heap, &e, "heap not pristine after neighbour tests")
    },
    Scenario("heap.huge_sizes") { memory, e in
      let heap = makeHeap(memory)
      let before = heap.statistics
      for size in UInt32.max - 16384...UInt32.max {
        e.expect(heap.allocate(Int(size)) == nil, "huge size must return nil", UInt(size))
      }
      e.expect(heap.allocate(-1) == nil && heap.allocate(Int.max) == nil, "negative and Int.max sizes", 0)
      e.expect(heap.allocateZeroed(count: Int.max / 2, size: 4) == nil, "calloc overflow", 0)
      // (2^62 + 1) × 4 wraps to 4: only the overflow check can refuse it.
      e.expect(heap.allocateZeroed(count: (1 << 62) + 1, size: 4) == nil, "calloc product that wraps to a small size", 0)
      e.expect(heap.statistics == before, "huge requests changed the heap", 0)
      expectPristine(heap, &e, "heap not pristine after huge sizes")
    },
    Scenario("heap.realloc_calloc") { memory, e in
      let heap = makeHeap(memory)
      let p = heap.allocate(100)!
      for i in 0..<100 { p.storeBytes(of: UInt8(i), toByteOffset: i, as: UInt8.self) }
      let grown = try! heap.reallocate(p, to: 1000)!
      e.expect(grown == p, "grows in place into a free neighbour", address(grown))
      let blocker = heap.allocate(32)!
      let moved = try! heap.reallocate(grown, to: 5000)!
      e.expect(moved != grown, "moves when the neighbour is taken", address(moved))
      var intact = true
      for i in 0..<100 where moved.load(fromByteOffset: i, as: UInt8.self) != UInt8(i) { intact = false }
      e.expect(intact, "realloc preserves contents", 0)
      let shrunk = try! heap.reallocate(moved, to: 50)!
      e.expect(shrunk == moved && (try! heap.usableSize(shrunk)) < 5000, "shrinks in place", 0)
      e.expect(heap.check() == nil, "heapCheck after realloc", 0)
      let z = heap.allocateZeroed(count: 100, size: 10)!
      var zero = true
      for i in 0..<1000 where z.load(fromByteOffset: i, as: UInt8.self) != 0 { zero = false }
      e.expect(zero, "calloc memory is zeroed", 0)
      e.expect((try! heap.reallocate(nil, to: 10)) != nil, "realloc(nil) allocates", 0)
      e.expect((try! heap.reallocate(z, to: 0)) == nil, "realloc(p, 0) frees", 0)
      try? heap.deallocate(shrunk)
      try? heap.deallocate(blocker)
      e.expect(heap.check() == nil, "heapCheck after realloc frees", 0)
    },
    Scenario("heap.statistics_identity") { memory, e in
      let heap = makeHeap(memory)
      var rng = SplitMix(seed: memory.seed)
      var live: [UnsafeMutableRawPointer] = []
      for _ in 0..<500 {
        if live.isEmpty || rng.below(3) != 0, let p = heap.allocate(rng.inRange(1..<2000)) {
          live.append(p)
        } else if !live.isEmpty {
          try? heap.deallocate(live.remove(at: rng.below(live.count)))
        }
        let s = heap.statistics
        e.expect(s.claimedBytes == s.usedBytes + s.freeBytes + s.overheadBytes, "claimed = used + free + overhead", 0)
        e.expect(s.claimedBytes == 1 << 20 && s.peakUsedBytes >= s.usedBytes, "claimed bytes and peak", 0)
      }
      for p in live { try? heap.deallocate(p) }
      expectPristine(heap, &e, "heap not pristine after statistics run")
    },
    Scenario("heap.draw_map") { memory, e in
      // An arena of 16 KiB plus the sentinel: 16 cells of 1 KiB and a last cell that is
      // only the sentinel.
      let heap = Heap(start: memory.base, size: Heap.controlBytes + (16 << 10) + 16, zeroFill: memory.zeroFill)!
      let first = heap.allocate(4096 - 16)!
      let second = heap.allocate(4096 - 16)!
      try? heap.deallocate(first)
      var drawn: [UInt8] = []
      heap.drawMap(cellBytes: 1024) { drawn.append($0) }
      // "0x" + 12 hex digits of the arena's start, a space, the cells, a newline.
      var expected: [UInt8] = [48, 120]
      let start = heap.arenaRanges[0].start
      for shift in stride(from: 44, through: 0, by: -4) {
        let digit = UInt8((start >> UInt(shift)) & 0xF)
        expected.append(digit < 10 ? 48 + digit : 87 + digit)
      }
      expected.append(32)
      for cell in 0..<17 {
        expected.append(cell == 16 ? 124 : (cell >= 4 && cell < 8) ? 35 : 46)  // | # .
      }
      expected.append(10)
      e.expect(drawn == expected, "map differs from . x4, # x4, . x8, |", UInt(drawn.count))
      e.expect(UInt(bitPattern: second) == start + 4096 + 16, "second block follows the first", address(second))
      try? heap.deallocate(second)
      expectPristine(heap, &e, "heap not pristine after the map")
    },
  ]
}
