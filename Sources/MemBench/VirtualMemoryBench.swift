import TranslationFormats
import PageFrames
import VirtualMemory

/// `make bench ONLY=vm`: what the translation tables cost on the host (no MMU, no TLB:
/// `TranslationMaintenance.hosted`, so the figures are the table work alone).
struct VMFigures {
  /// ns per map + unmap of one 4 KiB page whose tables stay (a neighbour page is mapped).
  var pairWarm: Double
  /// ns per map + unmap of a page alone in its tables: three table pages taken, zeroed
  /// and given back each time.
  var pairCold: Double
  /// Full flushes and per-page invalidations of one unmap of 512 pages (expected: 1 and 0).
  var flushes512: Int
  var pageInvalidations512: Int
  /// The same for one unmap of 16 pages (expected: 0 and 16).
  var flushes16: Int
  var pageInvalidations16: Int
  /// ns per vmalloc(16 KiB) + vfree.
  var vmallocPair: Double
}

func vmFigures(frames: PageFrameAllocator, iterations: Int, repetitions: Int) -> VMFigures {
  let space = try! AddressSpace(frames: frames, maintenance: .hosted, format: .armv8Stage1)
  defer { space.destroy() }
  let va: UInt = 0x40_0000_0000
  let physical: UInt = 0x8000_0000

  func pairs(_ address: UInt) -> Double {
    median((0..<repetitions).map { _ -> Double in
      let start = now()
      for _ in 0..<iterations {
        try! space.map(address, physical, pages: 1, .kernelData)
        try! space.unmap(address, pages: 1)
      }
      return Double(now() - start) / Double(iterations)
    })
  }
  // Warm: a neighbour keeps the level-1, -2 and -3 tables alive.
  try! space.map(va + 4096, physical + 4096, pages: 1, .kernelData)
  let warm = pairs(va)
  try! space.unmap(va + 4096, pages: 1)
  let cold = pairs(va + (1 << 30))

  // One unmap of 512 single pages (physical one page off 2 MiB: no block), then of 16.
  try! space.map(va, physical + 4096, pages: 512, .kernelData)
  var before = space.statistics
  try! space.unmap(va, pages: 512)
  let flushes512 = space.statistics.fullFlushes - before.fullFlushes
  let invalidations512 = space.statistics.pageInvalidations - before.pageInvalidations
  try! space.map(va, physical + 4096, pages: 16, .kernelData)
  before = space.statistics
  try! space.unmap(va, pages: 16)
  let flushes16 = space.statistics.fullFlushes - before.fullFlushes
  let invalidations16 = space.statistics.pageInvalidations - before.pageInvalidations

  try! space.setVmallocRange(base: 0x7f00_0000_0000, limit: 0x7f00_4000_0000)
  // The first area allocates the area list; keep one area so it stays.
  let keep = try! space.vmalloc(4096)
  let vmallocPair = median((0..<repetitions).map { _ -> Double in
    let start = now()
    for _ in 0..<iterations {
      let area = try! space.vmalloc(16 << 10)
      try! space.vfree(area)
    }
    return Double(now() - start) / Double(iterations)
  })
  try! space.vfree(keep)
  precondition(space.checkInvariants() == nil)
  return VMFigures(
    pairWarm: warm, pairCold: cold, flushes512: flushes512, pageInvalidations512: invalidations512,
    flushes16: flushes16, pageInvalidations16: invalidations16, vmallocPair: vmallocPair)
}
