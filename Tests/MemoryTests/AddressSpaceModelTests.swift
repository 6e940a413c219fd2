import TranslationFormats
import Glibc
import KernelSync
import PageFrames
import Scenarios
import Testing
@testable import VirtualMemory

/// Page frames over simulated RAM for address-space tests: the tables come from them,
/// in the format under test, and the walker reads the tables through them.
final class VMFixture {
  static let ramBase: UInt = 0x4000_0000
  let ram: SimulatedRAM
  let frames: PageFrameAllocator
  /// The table format under test, and so the walk that reads the tables back.
  let tested: TestedFormat
  var format: TranslationFormat { tested.format }

  /// `bytes` of RAM at `ramBase`: the page metadata at its start, the rest free; spaces
  /// with tables in `format`.
  init(bytes: Int = 64 << 20, format: TestedFormat) throws {
    tested = format
    ram = SimulatedRAM(bytes: bytes)
    var ranges = PhysicalRanges()
    ranges.append(PhysicalRange(start: Self.ramBase, end: Self.ramBase + UInt(bytes)))
    frames = try #require(
      PageFrameAllocator(
        ranges: ranges, metadata: ram.base,
        directMapOffset: Int(bitPattern: ram.base) - Int(bitPattern: Self.ramBase), zeroFill: hostZeroFill))
    let metadataBytes = PageFrameAllocator.metadataBytes(pageCount: bytes >> Page.shift)
    let metadataEnd = Self.ramBase + UInt((metadataBytes + Page.size - 1) & ~(Page.size - 1))
    _ = try frames.reserve(start: Self.ramBase, end: metadataEnd, as: .metadata).get()
    _ = try frames.release(start: metadataEnd, end: Self.ramBase + UInt(bytes)).get()
  }

  func space() throws -> AddressSpace { try AddressSpace(frames: frames, maintenance: .hosted, format: format) }

  /// The independent walker over `space`'s tables. Every word it reads must lie in a
  /// page the frames say is a page table (else the read is refused as a fault).
  func walker(_ space: AddressSpace) -> TranslationWalker {
    let frames = self.frames
    return TranslationWalker(root: space.root, scheme: tested) { physical in
      guard frames.owner(ofPhysical: physical) == .pageTable else {
        Issue.record("the walk read \(hex(physical)), not in a .pageTable page")
        return 0
      }
      return frames.pointer(toPhysical: physical).load(as: UInt64.self)
    }
  }

  /// Table pages in use by `space` (the only address space over these frames), counted
  /// by the frames (its state page is a `.pageTable` page too), once the space has
  /// given back the empty tables it keeps for reuse.
  func pageTablePages(_ space: AddressSpace) -> Int {
    space.releasePooledTables()
    return frames.count(.pageTable)
  }
}

func hex(_ value: UInt) -> String { "0x" + String(value, radix: 16) }

/// Expects `body` to throw `reason` (at `address`, when given); an issue if it does not.
func expectRefused(
  _ reason: VirtualMemoryFailure, at address: UInt? = nil, _ comment: Comment, _ body: () throws(VirtualMemoryError) -> Void
) {
  do throws(VirtualMemoryError) {
    try body()
    Issue.record("accepted: \(comment.rawValue)")
  } catch {
    #expect(error.reason == reason, comment)
    if let address { #expect(error.address == address, comment) }
  }
}

/// The model: virtual page number → (physical page number, attributes) for every page
/// of a bounded window. Semantically a dictionary keyed by virtual page number; stored
/// densely (one word per page of the window, 0 = not mapped) because a `Dictionary`
/// at -Onone made a million operations take minutes.
final class PageModel {
  let firstPage: UInt
  let pageCount: Int
  private let slots: UnsafeMutablePointer<UInt64>
  /// Pages mapped.
  private(set) var mapped = 0

  init(base: UInt, bytes: UInt) {
    firstPage = base >> 12
    pageCount = Int(bytes >> 12)
    slots = .allocate(capacity: pageCount)
    slots.initialize(repeating: 0, count: pageCount)
  }

  deinit { slots.deallocate() }

  subscript(page page: UInt) -> (physicalPage: UInt, attributes: MapAttributes)? {
    let bits = slots[Int(page - firstPage)]
    return bits == 0 ? nil : (UInt(bits >> 8), MapAttributes(rawValue: UInt8(bits & 0xff)))
  }

  /// The raw word of a page: `physicalPage << 8 | attributes`, 0 when not mapped.
  @inline(__always) func word(_ page: UInt) -> UInt64 { slots[Int(page - firstPage)] }

  // Bulk forms of the subscript, as plain loops over the words (a `for in` over a range
  // at -Onone costs more than the rest of a call).

  /// Maps `count` pages from `first` to the physical pages from `physicalPage` on.
  func map(_ first: UInt, count: Int, physicalPage: UInt, _ attributes: MapAttributes) {
    var index = Int(first - firstPage)
    let end = index + count
    var word = UInt64(physicalPage) << 8 | UInt64(attributes.rawValue)
    while index < end {
      if slots[index] == 0 { mapped += 1 }
      slots[index] = word
      word += 256
      index += 1
    }
  }

  /// Unmaps `count` pages from `first`; returns how many were mapped.
  @discardableResult
  func unmap(_ first: UInt, count: Int) -> Int {
    let removed = mappedCount(from: first, count: count)
    memset(slots + Int(first - firstPage), 0, count * 8)
    mapped -= removed
    return removed
  }

  /// Gives every page in `count` pages from `first` (all mapped) `attributes`.
  func protect(_ first: UInt, count: Int, _ attributes: MapAttributes) {
    var index = Int(first - firstPage)
    let end = index + count
    while index < end {
      slots[index] = slots[index] & ~0xff | UInt64(attributes.rawValue)
      index += 1
    }
  }

  /// The first page in `[first, first + count)` that is mapped (`mapped`) or not.
  func firstPage(mapped: Bool, from first: UInt, count: Int) -> UInt? {
    var index = Int(first - firstPage)
    let end = index + count
    while index < end {
      if (slots[index] != 0) == mapped { return firstPage + UInt(index) }
      index += 1
    }
    return nil
  }

  func mappedCount(from first: UInt, count: Int) -> Int {
    var index = Int(first - firstPage)
    let end = index + count
    var total = 0
    while index < end {
      if slots[index] != 0 { total += 1 }
      index += 1
    }
    return total
  }
}

/// The address space's own answers (`translate`, errors, statistics) and the
/// independent walker's reading of its tables, against the model.
struct Agreement {
  let space: AddressSpace
  let walker: TranslationWalker
  let model: PageModel

  /// `translate`, the walker and the model agree about the page at `va` (checked at a
  /// byte inside it); false (with an issue recorded) otherwise.
  @discardableResult
  func check(_ va: UInt, _ context: @autoclosure () -> String) -> Bool {
    let offset: UInt = 0x5a8
    let expected = model[page: va >> 12]
    let translated = space.translate(va + offset)
    let walked = walker.walk(va + offset)
    guard let expected else {
      if translated != nil {
        Issue.record("\(context()): \(hex(va)) translates to \(hex(translated!.physical)) but is not mapped in the model")
        return false
      }
      guard case .failure(.translation) = walked else {
        Issue.record("\(context()): walker at unmapped \(hex(va)): \(walked)")
        return false
      }
      return true
    }
    let physical = expected.physicalPage << 12 + offset
    guard case .success(let walk) = walked else {
      Issue.record("\(context()): walker faults at mapped \(hex(va)): \(walked)")
      return false
    }
    guard let translated else {
      Issue.record("\(context()): translate(\(hex(va))) is nil, the model maps it")
      return false
    }
    guard walk.physical == physical, walk.mapAttributes == expected.attributes,
      translated.physical == physical, translated.attributes == expected.attributes,
      translated.bytes == walk.leafBytes
    else {
      Issue.record(
        "\(context()): \(hex(va)): model \(hex(physical)) \(expected.attributes.rawValue); walker \(hex(walk.physical)) \(walk.mapAttributes?.rawValue ?? 255) level \(walk.level); translate \(hex(translated.physical)) \(translated.attributes.rawValue) \(translated.bytes)"
      )
      return false
    }
    return true
  }

  /// Every page of the model's window: the walker leaf by leaf (one `translate` per leaf,
  /// the model for every page), plus the pages just outside the window, the mapped
  /// byte count and `checkInvariants`.
  func checkAll(_ context: @autoclosure () -> String, mappedBytes: Bool = true) -> Bool {
    let windowStart = model.firstPage << 12
    let windowEnd = windowStart + UInt(model.pageCount) << 12
    var va = windowStart
    while va < windowEnd {
      switch walker.walk(va) {
      case .success(let walk):
        guard let attributes = walk.mapAttributes else {
          Issue.record("\(context()): \(hex(va)): permissions no MapAttributes express: \(walk)")
          return false
        }
        let leafStart = va & ~(walk.leafBytes - 1)
        guard leafStart >= windowStart, leafStart + walk.leafBytes <= windowEnd else {
          Issue.record("\(context()): leaf at \(hex(leafStart)) crosses the window")
          return false
        }
        guard check(va, context()) else { return false }
        let firstPhysicalPage = (walk.physical - (va - leafStart)) >> 12
        var index: UInt = 0
        var expected = UInt64(firstPhysicalPage) << 8 | UInt64(attributes.rawValue)
        let leafPages = walk.leafBytes >> 12
        let leafFirstPage = leafStart >> 12
        while index < leafPages {
          guard model.word(leafFirstPage + index) == expected else {
            Issue.record("\(context()): page \(hex(leafStart + index << 12)) of a level-\(walk.level) leaf differs from the model")
            return false
          }
          expected += 256
          index += 1
        }
        va = leafStart + walk.leafBytes
      case .failure(.translation(let level)):
        let span: UInt = 1 << UInt(39 - 9 * level)
        let end = min((va & ~(span - 1)) + span, windowEnd)
        if let page = model.firstPage(mapped: true, from: va >> 12, count: Int((end - va) >> 12)) {
          Issue.record("\(context()): \(hex(page << 12)) mapped in the model; the walker faults at level \(level)")
          return false
        }
        guard check(va, context()) else { return false }
        va = end
      case .failure(let fault):
        Issue.record("\(context()): walker fault \(fault) at \(hex(va))")
        return false
      }
    }
    for outside in [windowStart - 4096, windowEnd] {
      // Past the top of the translated range (a window at the end of it), the walk
      // faults on the address itself.
      let walked = walker.walk(outside)
      var faults = walked == .failure(.addressSize)
      if case .failure(.translation) = walked { faults = true }
      guard faults, space.translate(outside) == nil else {
        Issue.record("\(context()): \(hex(outside)), outside the window, is mapped")
        return false
      }
    }
    guard !mappedBytes || space.statistics.mappedBytes == UInt(model.mapped) << 12 else {
      Issue.record("\(context()): mappedBytes \(space.statistics.mappedBytes), model \(model.mapped) pages")
      return false
    }
    if let broken = space.checkInvariants() {
      Issue.record("\(context()): checkInvariants: \(broken.reason) at \(hex(broken.address))")
      return false
    }
    return true
  }
}

/// Attributes as the model sees them valid (W^X, readable, no executable device).
func modelAllows(_ attributes: MapAttributes) -> Bool {
  attributes.contains(.read) && !attributes.contains([.write, .execute])
    && !attributes.contains([.device, .execute]) && attributes.rawValue < 64
}

@Suite struct AddressSpaceModelTests {
  /// The window's 4 GiB: from 510 GiB, across the 512 GiB boundary (two level-0
  /// entries) in a four-level format; in a three-level one (no 512 GiB boundary below
  /// its limit) the last 4 GiB its tables translate, up to the limit.
  static func windowBase(_ format: TranslationFormat) -> UInt {
    format.firstLevel == 0 ? 510 << 30 : format.addressLimit - windowBytes
  }
  static let windowBytes: UInt = 4 << 30
  /// Where linear mappings lead: window offset + this (1 GiB aligned, not RAM).
  static let linearPhysical: UInt = 0x40_0000_0000
  static let operations = 1_000_000
  static let fullCheckEvery = 10_000

  @Test("a million random map/unmap/protect calls against a page model, the walker and translate", arguments: TestedFormat.allCases)
  func randomModel(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 64 << 20, format: tested)
    let frames = fixture.frames
    let freeBefore = frames.freePageCount
    let space = try fixture.space()
    let windowBase = Self.windowBase(fixture.format)
    let model = PageModel(base: windowBase, bytes: Self.windowBytes)
    let agreement = Agreement(space: space, walker: fixture.walker(space), model: model)
    var rng = SplitMix(seed: 0x7AB1E5)
    let windowPages = Int(Self.windowBytes >> 12)
    let firstPage = windowBase >> 12
    var focus = 0   // page offset of the 32 MiB region most calls land in
    var counts = (map: 0, mapped: 0, already: 0, unmap: 0, protect: 0, notMapped: 0, badAttributes: 0, gigabytes: 0)
    var operation = 0
    var failed = false

    func randomAttributes() -> MapAttributes {
      while true {
        let attributes = MapAttributes(rawValue: UInt8(rng.below(64))).union(.read)
        if modelAllows(attributes) { return attributes }
      }
    }
    func physicalPage(for page: UInt) -> UInt {
      switch rng.below(10) {
      case 0..<6: return (Self.linearPhysical >> 12) + (page - firstPage)  // blocks possible
      case 6..<8: return (Self.linearPhysical >> 12) + (page - firstPage) + UInt(1 + rng.below(511)) << 9  // 2 MiB only
      default: return UInt(rng.below(1 << 28))  // anywhere below 1 TiB
      }
    }

    while operation < Self.operations && !failed {
      if operation % 20_000 == 0 { focus = rng.below(windowPages - 8192) & ~511 }
      // The range.
      var start: Int
      var count: Int
      let shape = rng.below(10_000)
      var gigabyte = false
      if shape < 3 {
        gigabyte = true
        start = rng.below(windowPages >> 18) << 18
        count = 1 << 18 + (rng.below(2) == 0 ? 0 : rng.below(1024))
      } else if shape < 1_500 {
        start = focus + rng.below(16) << 9 + (rng.below(4) == 0 ? rng.below(3) : 0)
        count = 512 * (1 + rng.below(3)) + (rng.below(4) == 0 ? rng.below(5) - 2 : 0)
      } else if shape < 2_500 {
        start = focus + rng.below(8192)
        count = 17 + rng.below(2000)
      } else {
        start = focus + rng.below(8192)
        count = 1 + rng.below(16)
      }
      count = min(count, windowPages - start)
      let page = firstPage + UInt(start)
      let va = page << 12
      let kind = gigabyte ? 3 : rng.below(100)
      let context = "operation \(operation)"

      if kind == 3 || kind < 45 {
        // map; a gigabyte is unmapped first (its own call) so the map can use 1 GiB leaves.
        if gigabyte {
          let expected = model.mappedCount(from: page, count: count)
          let removed = try space.unmap(va, pages: count)
          #expect(removed == UInt(expected) << 12, "\(context)")
          model.unmap(page, count: count)
          operation += 1
          counts.unmap += 1
          counts.gigabytes += 1
        }
        var attributes = randomAttributes()
        let badAttributes = rng.below(100) == 0
        if badAttributes { attributes = rng.below(2) == 0 ? [.write, .execute, .read] : [.write] }
        let physical = gigabyte ? (Self.linearPhysical >> 12) + (page - firstPage) : physicalPage(for: page)
        counts.map += 1
        do throws(VirtualMemoryError) {
          try space.map(va, physical << 12, pages: count, attributes)
          #expect(!badAttributes, "\(context): map took bad attributes")
          #expect(model.firstPage(mapped: true, from: page, count: count) == nil, "\(context): map over mapped pages")
          model.map(page, count: count, physicalPage: physical, fixture.format.expressible(attributes))
          counts.mapped += 1
        } catch {
          if badAttributes {
            #expect(error.reason == .badAttributes, "\(context)")
            counts.badAttributes += 1
          } else {
            let first = model.firstPage(mapped: true, from: page, count: count)
            #expect(error.reason == .alreadyMapped && error.address == (first ?? 0) << 12, "\(context): \(error)")
            counts.already += 1
          }
        }
      } else if kind < 75 {
        let expected = model.mappedCount(from: page, count: count)
        let removed = try space.unmap(va, pages: count)
        #expect(removed == UInt(expected) << 12, "\(context): unmap returned \(removed), model \(expected) pages")
        model.unmap(page, count: count)
        counts.unmap += 1
      } else {
        // protect; two in three over mapped pages only (the run from a mapped start).
        if rng.below(3) != 0, model.word(page) != 0 {
          count = Int((model.firstPage(mapped: false, from: page, count: count) ?? page + UInt(count)) - page)
        }
        let attributes = randomAttributes()
        let hole = model.firstPage(mapped: false, from: page, count: count)
        do throws(VirtualMemoryError) {
          try space.protect(va, pages: count, attributes)
          #expect(hole == nil, "\(context): protect over a hole at \(hex((hole ?? 0) << 12))")
          model.protect(page, count: count, fixture.format.expressible(attributes))
          counts.protect += 1
        } catch {
          #expect(error.reason == .notMapped && error.address == (hole ?? 0) << 12, "\(context): \(error)")
          counts.notMapped += 1
        }
      }
      operation += 1

      // The range's edges, its neighbours and one page inside, every call.
      let end = page + UInt(count)
      var probes = [page, end - 1, page + UInt(rng.below(count))]
      if page > firstPage { probes.append(page - 1) }
      if end < firstPage + UInt(windowPages) { probes.append(end) }
      for probe in probes where !agreement.check(probe << 12, context) {
        failed = true
        break
      }
      if operation % Self.fullCheckEvery == 0 || operation >= Self.operations {
        if !agreement.checkAll(context) { failed = true }
      }
    }
    #expect(!failed)
    print(
      "AddressSpace model, \(tested): \(operation) calls: \(counts); tables \(space.statistics.tablePages), splits \(space.statistics.blockSplits), flushes \(space.statistics.fullFlushes)"
    )
    // The interesting cases happened.
    #expect(counts.already > 1000 && counts.notMapped > 1000 && counts.mapped > 1000 && counts.gigabytes > 0)
    #expect(space.statistics.blockSplits > 100)

    // Everything out in one call, then nothing may be left but the root.
    let removed = try space.unmap(windowBase, pages: windowPages)
    #expect(removed == UInt(model.mapped) << 12)
    model.unmap(firstPage, count: windowPages)
    #expect(agreement.checkAll("after unmapping the window"))
    #expect(space.statistics.tablePages == 1)
    #expect(fixture.pageTablePages(space) == 2, "the root and the state page")
    space.destroy()
    #expect(frames.freePageCount == freeBefore)
    #expect(frames.count(.pageTable) == 0)
    #expect(frames.checkInvariants() == nil)
  }
}

/// One behaviour at a time, each read back through the independent walker.
@Suite struct AddressSpaceTargetedTests {
  static let gib: UInt = 1 << 30
  static let twoMiB: UInt = 2 << 20
  static let page: UInt = 4096

  /// The walker's translation of `va`, or nil (with an issue) when it faults.
  func leaf(_ walker: TranslationWalker, _ va: UInt, _ comment: Comment? = nil) -> TranslationWalker.Translation? {
    switch walker.walk(va) {
    case .success(let translation): return translation
    case .failure(let fault):
      Issue.record("walker faults at \(hex(va)): \(fault) \(comment?.rawValue ?? "")")
      return nil
    }
  }

  func isUnmapped(_ walker: TranslationWalker, _ space: AddressSpace, _ va: UInt) -> Bool {
    guard case .failure(.translation) = walker.walk(va) else { return false }
    return space.translate(va) == nil
  }

  @Test("MAIR: ARMv8Stage1.mair is the MAIR_EL1 the walker decodes (Normal WB at 0, Device-nGnRE at 1)")
  func mair() {
    #expect(ARMv8Stage1.mair == TranslationWalker.mair)
  }

  @Test("a 1 GiB-aligned map is one level-1 leaf, a 2 MiB-aligned one a level-2 leaf, a page-aligned physical address level-3 pages", arguments: TestedFormat.allCases)
  func blockLevels(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: tested)
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let (gib, twoMiB, page) = (Self.gib, Self.twoMiB, Self.page)

    try space.map(3 * gib, 5 * gib, pages: 1 << 18, .kernelData)
    for offset: UInt in [0, 0x1234_5678, gib - 8] {
      let found = leaf(walker, 3 * gib + offset)
      #expect(found?.level == 1 && found?.physical == 5 * gib + offset && found?.mapAttributes == .kernelData)
      let translated = space.translate(3 * gib + offset)
      #expect(translated?.physical == 5 * gib + offset && translated?.attributes == .kernelData && translated?.bytes == gib)
    }
    #expect(isUnmapped(walker, space, 3 * gib - page) && isUnmapped(walker, space, 4 * gib))

    try space.map(8 * gib + 7 * twoMiB, 9 * gib + 3 * twoMiB, pages: 512, [.read, .user])
    for offset: UInt in [0, 0x12_3456, twoMiB - 1] {
      let found = leaf(walker, 8 * gib + 7 * twoMiB + offset)
      #expect(found?.level == 2 && found?.physical == 9 * gib + 3 * twoMiB + offset && found?.mapAttributes == [.read, .user])
      #expect(found?.userReadable == true && found?.userWritable == false && found?.userExecutable == false && found?.kernelExecutable == false)
    }

    // Virtual 2 MiB aligned, physical only 4 KiB aligned: 512 pages.
    try space.map(10 * gib, 11 * gib + page, pages: 512, .kernelReadOnly)
    for index: UInt in [0, 1, 511] {
      let found = leaf(walker, 10 * gib + index * page)
      #expect(found?.level == 3 && found?.physical == 11 * gib + (index + 1) * page && found?.mapAttributes == .kernelReadOnly)
    }

    // 1 GiB + 2 MiB + 3 pages from a 1 GiB boundary: one of each leaf.
    try space.map(12 * gib, 20 * gib, pages: (1 << 18) + 512 + 3, .kernelText)
    #expect(leaf(walker, 12 * gib)?.level == 1)
    #expect(leaf(walker, 13 * gib)?.level == 2)
    #expect(leaf(walker, 13 * gib + twoMiB)?.level == 3)
    #expect(leaf(walker, 13 * gib + twoMiB + 2 * page)?.physical == 21 * gib + twoMiB + 2 * page)
    #expect(leaf(walker, 12 * gib)?.kernelExecutable == true && leaf(walker, 12 * gib)?.userExecutable == false)
    #expect(isUnmapped(walker, space, 13 * gib + twoMiB + 3 * page))

    // Root, one level-1 table, level-2 tables for 8, 10 and 13 GiB, level-3 tables for
    // 10 GiB and 13 GiB + 2 MiB: 7, as the frames count them (less the state page); 6
    // where the root is the level-1 table.
    let tables = 7 - fixture.format.firstLevel
    #expect(fixture.pageTablePages(space) - 1 == tables)
    #expect(space.statistics.tablePages == tables)
    #expect(space.statistics.mappedBytes == 2 * gib + 3 * twoMiB + 3 * page)
    #expect(space.checkInvariants() == nil)
    space.destroy()
    #expect(fixture.frames.count(.pageTable) == 0)
  }

  @Test("unmapping one page in the middle of a 2 MiB block splits it: the neighbours still translate, as level-3 pages", arguments: TestedFormat.allCases)
  func splitTwoMiB(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: tested)
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let va = Self.gib + 2 * Self.twoMiB, pa: UInt = 0x80_0000_0000 + 5 * Self.twoMiB
    try space.map(va, pa, pages: 512, .kernelData)
    #expect(leaf(walker, va)?.level == 2)
    let before = space.statistics
    let tablesBefore = fixture.pageTablePages(space)
    #expect(try space.unmap(va + 256 * Self.page, pages: 1) == Self.page)
    #expect(space.statistics.blockSplits == before.blockSplits + 1)
    #expect(fixture.pageTablePages(space) == tablesBefore + 1)
    #expect(isUnmapped(walker, space, va + 256 * Self.page))
    for index: UInt in 0..<512 where index != 256 {
      let found = leaf(walker, va + index * Self.page + 8)
      #expect(found?.level == 3 && found?.physical == pa + index * Self.page + 8 && found?.mapAttributes == .kernelData, "page \(index)")
      #expect(space.translate(va + index * Self.page)?.bytes == Self.page)
    }
    #expect(space.statistics.mappedBytes == Self.twoMiB - Self.page)
    #expect(space.checkInvariants() == nil)
    space.destroy()
  }

  @Test("one page out of a 1 GiB block: two splits; the other 2 MiB pieces stay level-2 blocks", arguments: TestedFormat.allCases)
  func splitGigabyte(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: tested)
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let va = 7 * Self.gib, pa = 2 * Self.gib
    try space.map(va, pa, pages: 1 << 18, .kernelReadOnly)
    let hole = va + 300 * Self.twoMiB + 17 * Self.page
    try space.unmap(hole, pages: 1)
    #expect(space.statistics.blockSplits == 2)
    #expect(isUnmapped(walker, space, hole))
    for offset in [0, 299 * Self.twoMiB, 301 * Self.twoMiB, Self.gib - Self.page] {
      let found = leaf(walker, va + offset)
      #expect(found?.level == 2 && found?.physical == pa + offset && found?.mapAttributes == .kernelReadOnly)
    }
    for offset in [300 * Self.twoMiB, hole - va - Self.page, hole - va + Self.page, 301 * Self.twoMiB - Self.page] {
      let found = leaf(walker, va + offset)
      #expect(found?.level == 3 && found?.physical == pa + offset && found?.mapAttributes == .kernelReadOnly)
    }
    #expect(space.statistics.mappedBytes == Self.gib - Self.page)
    #expect(space.checkInvariants() == nil)
    space.destroy()
  }

  @Test("protect of one page inside a 2 MiB block splits it; only that page changes", arguments: TestedFormat.allCases)
  func protectSplits(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: tested)
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let va = 5 * Self.gib + Self.twoMiB, pa = 3 * Self.gib + 7 * Self.twoMiB
    try space.map(va, pa, pages: 512, .kernelData)
    try space.protect(va + 9 * Self.page, pages: 1, .kernelText)
    #expect(space.statistics.blockSplits == 1)
    #expect(space.statistics.mappedBytes == Self.twoMiB)
    for index: UInt in [0, 8, 9, 10, 511] {
      let found = leaf(walker, va + index * Self.page)
      let expected: MapAttributes = index == 9 ? .kernelText : .kernelData
      #expect(found?.level == 3 && found?.physical == pa + index * Self.page && found?.mapAttributes == expected, "page \(index)")
    }
    #expect(leaf(walker, va + 9 * Self.page)?.kernelExecutable == true)
    #expect(leaf(walker, va + 9 * Self.page)?.kernelWritable == false)
    #expect(space.checkInvariants() == nil)
    space.destroy()
  }

  @Test("an unmap of 512 single pages is one full flush; of 16 pages or fewer, per-page invalidations and no full flush", arguments: TestedFormat.allCases)
  func flushBatching(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: tested)
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let va = 9 * Self.gib
    // Physical one page off 2 MiB: 512 level-3 pages.
    try space.map(va, 0x100_0000_0000 + Self.page, pages: 512, .kernelData)
    #expect(leaf(walker, va)?.level == 3 && leaf(walker, va + 511 * Self.page)?.level == 3)
    var before = space.statistics
    #expect(try space.unmap(va, pages: 512) == 512 * Self.page)
    #expect(space.statistics.fullFlushes == before.fullFlushes + 1)
    #expect(space.statistics.pageInvalidations == before.pageInvalidations)
    #expect(isUnmapped(walker, space, va) && isUnmapped(walker, space, va + 511 * Self.page))

    // 64 pages; unmaps of 1, 5 and 16 from the middle (the table keeps other pages).
    try space.map(va, 0x100_0000_0000 + Self.page, pages: 64, .kernelData)
    var next = va + 4 * Self.page
    for count in [1, 5, 16] {
      before = space.statistics
      #expect(try space.unmap(next, pages: count) == UInt(count) * Self.page)
      #expect(space.statistics.fullFlushes == before.fullFlushes, "\(count) pages")
      #expect(space.statistics.pageInvalidations == before.pageInvalidations + count, "\(count) pages")
      #expect(isUnmapped(walker, space, next) && isUnmapped(walker, space, next + UInt(count - 1) * Self.page))
      next += UInt(count + 1) * Self.page
    }
    // 17 pages: past the batch, one full flush.
    before = space.statistics
    #expect(try space.unmap(next, pages: 17) == 17 * Self.page)
    #expect(space.statistics.fullFlushes == before.fullFlushes + 1)
    #expect(space.statistics.pageInvalidations == before.pageInvalidations)
    // Holes are skipped: an unmap over 64 pages of which 4 are mapped invalidates 4.
    try space.unmap(va + 48 * Self.page, pages: 16)
    try space.map(va + 50 * Self.page, 0x200_0000_0000, pages: 4, .kernelData)
    before = space.statistics
    #expect(try space.unmap(va + 48 * Self.page, pages: 24) == 4 * Self.page)
    #expect(space.statistics.pageInvalidations == before.pageInvalidations + 4)
    #expect(space.statistics.fullFlushes == before.fullFlushes)
    #expect(space.checkInvariants() == nil)
    space.destroy()
  }

  @Test("16 pages alone in their tables: the unmap that empties the tables below the root is still 16 page invalidations, no full flush", arguments: TestedFormat.allCases)
  func flushWhenTablesEmpty(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: tested)
    let firstLevel = fixture.format.firstLevel
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let va = 9 * Self.gib
    try space.map(va, 0x100_0000_0000 + Self.page, pages: 16, .kernelData)
    #expect(space.statistics.tablePages == 4 - firstLevel)
    let before = space.statistics
    try space.unmap(va, pages: 16)
    #expect(space.statistics.pageInvalidations == before.pageInvalidations + 16)
    #expect(space.statistics.fullFlushes == before.fullFlushes)
    #expect(space.statistics.tablePages == 1)
    #expect(fixture.pageTablePages(space) == 2)
    #expect(walker.walk(va) == .failure(.translation(level: firstLevel)))
    // One page alone: one invalidation covers the tables below the root.
    try space.map(va, 0x100_0000_0000, pages: 1, .kernelData)
    try space.unmap(va, pages: 1)
    #expect(space.statistics.pageInvalidations == before.pageInvalidations + 17)
    #expect(space.statistics.tablePages == 1)
    space.destroy()
  }

  /// What a refused call must leave as it was: table pages (by the frames), statistics,
  /// and the walker's and translate's view of some addresses.
  struct Snapshot: Equatable {
    var tablePages: Int
    var freePages: Int
    /// The statistics but the maintenance counters (a refused map that ran out of
    /// frames has taken out what it mapped, and invalidated it).
    var statistics: [UInt]
    var translations: [AddressTranslation?]
    var walks: [Result<TranslationWalker.Translation, TranslationWalker.Fault>]

    init(_ fixture: VMFixture, _ space: AddressSpace, _ walker: TranslationWalker, _ addresses: [UInt]) {
      tablePages = fixture.pageTablePages(space)
      freePages = fixture.frames.freePageCount
      let figures = space.statistics
      statistics = [UInt(figures.tablePages), figures.mappedBytes, UInt(figures.blockSplits), UInt(figures.vmallocAreas)]
      translations = addresses.map { space.translate($0) }
      walks = addresses.map { walker.walk($0) }
    }
  }

  @Test("bad input: misaligned, no pages, past the address limit, W+X, no .read, over a mapping: the typed error, nothing changed", arguments: TestedFormat.allCases)
  func badInput(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: tested)
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let (gib, twoMiB, page) = (Self.gib, Self.twoMiB, Self.page)
    let va = 4 * gib + 8 * page
    try space.map(va, 0x7000_0000, pages: 8, .kernelData)
    try space.map(6 * gib, 7 * gib, pages: 512, .kernelReadOnly)   // a 2 MiB block
    let probes = [va, va + 7 * page, va + 8 * page, 6 * gib, 6 * gib + twoMiB - page, 6 * gib + twoMiB]
    let before = Snapshot(fixture, space, walker, probes)
    // The first address past the virtual range (2^48, 2^38) and past the physical one.
    let top = fixture.format.addressLimit
    let physicalTop = fixture.format.outputLimit

    func refused(_ reason: VirtualMemoryFailure, at address: UInt?, _ comment: Comment, _ body: () throws(VirtualMemoryError) -> Void) {
      expectRefused(reason, at: address, comment, body)
      #expect(Snapshot(fixture, space, walker, probes) == before, comment)
    }
    refused(.misaligned, at: va + 1, "map, virtual +1") { () throws(VirtualMemoryError) in try space.map(va + 1, 0x8000_0000, pages: 1, .kernelData) }
    refused(.misaligned, at: 0x8000_0800, "map, physical +0x800") { () throws(VirtualMemoryError) in try space.map(8 * gib, 0x8000_0800, pages: 1, .kernelData) }
    refused(.badCount, at: nil, "map, 0 pages") { () throws(VirtualMemoryError) in try space.map(8 * gib, 0x8000_0000, pages: 0, .kernelData) }
    refused(.badCount, at: nil, "map, -1 pages") { () throws(VirtualMemoryError) in try space.map(8 * gib, 0x8000_0000, pages: -1, .kernelData) }
    refused(.outOfRange, at: nil, "map at the limit") { () throws(VirtualMemoryError) in try space.map(top, 0x8000_0000, pages: 1, .kernelData) }
    refused(.outOfRange, at: nil, "map of 2 pages from the limit - 4 KiB") { () throws(VirtualMemoryError) in try space.map(top - page, 0x8000_0000, pages: 2, .kernelData) }
    refused(.outOfRange, at: nil, "map to the physical limit - 4 KiB, 2 pages") { () throws(VirtualMemoryError) in try space.map(8 * gib, physicalTop - page, pages: 2, .kernelData) }
    refused(.outOfRange, at: nil, "map of Int.max pages") { () throws(VirtualMemoryError) in try space.map(8 * gib, 0, pages: Int.max, .kernelData) }
    refused(.badAttributes, at: nil, "map [.read, .write, .execute]") { () throws(VirtualMemoryError) in try space.map(8 * gib, 0x8000_0000, pages: 1, [.read, .write, .execute]) }
    refused(.badAttributes, at: nil, "map [.write, .execute]") { () throws(VirtualMemoryError) in try space.map(8 * gib, 0x8000_0000, pages: 1, [.write, .execute]) }
    refused(.badAttributes, at: nil, "map [.write] without .read") { () throws(VirtualMemoryError) in try space.map(8 * gib, 0x8000_0000, pages: 1, [.write]) }
    refused(.badAttributes, at: nil, "map executable device") { () throws(VirtualMemoryError) in try space.map(8 * gib, 0x8000_0000, pages: 1, [.read, .device, .execute]) }
    refused(.badAttributes, at: nil, "map with an undefined bit") { () throws(VirtualMemoryError) in try space.map(8 * gib, 0x8000_0000, pages: 1, MapAttributes(rawValue: 0x41)) }
    refused(.alreadyMapped, at: va, "map over the 8 pages") { () throws(VirtualMemoryError) in try space.map(va - 4 * page, 0x9000_0000, pages: 6, .kernelData) }
    refused(.alreadyMapped, at: va + 7 * page, "map over the last of the 8 pages") { () throws(VirtualMemoryError) in try space.map(va + 7 * page, 0x9000_0000, pages: 600, .kernelData) }
    refused(.alreadyMapped, at: 6 * gib + 5 * page, "map into the 2 MiB block") { () throws(VirtualMemoryError) in try space.map(6 * gib + 5 * page, 0x9000_0000, pages: 1, .kernelData) }
    refused(.alreadyMapped, at: 6 * gib, "map of 1 GiB over the block") { () throws(VirtualMemoryError) in try space.map(6 * gib, 9 * gib, pages: 1 << 18, .kernelData) }
    refused(.misaligned, at: va + 4, "unmap misaligned") { () throws(VirtualMemoryError) in try space.unmap(va + 4, pages: 1) }
    refused(.badCount, at: nil, "unmap 0 pages") { () throws(VirtualMemoryError) in try space.unmap(va, pages: 0) }
    refused(.outOfRange, at: nil, "unmap past the limit") { () throws(VirtualMemoryError) in try space.unmap(top - 2 * page, pages: 3) }
    refused(.notMapped, at: va + 8 * page, "protect past the 8 pages") { () throws(VirtualMemoryError) in try space.protect(va, pages: 9, .kernelReadOnly) }
    refused(.notMapped, at: va - page, "protect from below the 8 pages") { () throws(VirtualMemoryError) in try space.protect(va - page, pages: 2, .kernelReadOnly) }
    refused(.notMapped, at: 6 * gib + twoMiB, "protect of the block and one page more") { () throws(VirtualMemoryError) in try space.protect(6 * gib + page, pages: 512, .kernelData) }
    refused(.badAttributes, at: nil, "protect W+X") { () throws(VirtualMemoryError) in try space.protect(va, pages: 1, [.read, .write, .execute]) }
    refused(.misaligned, at: nil, "protect misaligned") { () throws(VirtualMemoryError) in try space.protect(va + 12, pages: 1, .kernelData) }
    refused(.badCount, at: nil, "protect 0 pages") { () throws(VirtualMemoryError) in try space.protect(va, pages: 0, .kernelData) }
    refused(.misaligned, at: nil, "vmalloc range misaligned") { () throws(VirtualMemoryError) in try space.setVmallocRange(base: 100 * gib + 1, limit: 101 * gib) }
    refused(.outOfRange, at: nil, "vmalloc range past the limit") { () throws(VirtualMemoryError) in try space.setVmallocRange(base: top - gib, limit: top + gib) }
    refused(.outOfRange, at: nil, "vmalloc range empty") { () throws(VirtualMemoryError) in try space.setVmallocRange(base: 100 * gib, limit: 100 * gib) }
    refused(.alreadyMapped, at: va, "vmalloc range over a mapping") { () throws(VirtualMemoryError) in try space.setVmallocRange(base: 4 * gib, limit: 5 * gib) }
    refused(.outOfMemory, at: nil, "vmalloc before a range is set") { () throws(VirtualMemoryError) in _ = try space.vmalloc(4096) }
    #expect(space.vmallocRange == nil)
    #expect(space.checkInvariants() == nil)
    space.destroy()
    #expect(fixture.frames.count(.pageTable) == 0)
  }

  /// Page frames with `free` pages left free; the rest held in `held` (give them back
  /// with `release`).
  func exhaust(_ frames: PageFrameAllocator, leaving free: Int) -> [UnsafeMutableRawPointer] {
    var held: [UnsafeMutableRawPointer] = []
    while frames.freePageCount > free, let page = frames.allocPages(order: 0, zeroed: false) { held.append(page) }
    return held
  }

  @Test("out of table pages: map throws outOfMemory, maps nothing and keeps no table page; a split that finds no frame too", arguments: TestedFormat.allCases)
  func outOfMemory(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 2 << 20, format: tested)
    let frames = fixture.frames
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let (gib, twoMiB, page) = (Self.gib, Self.twoMiB, Self.page)
    // A 2 MiB block to split later, while frames are still there (the level-1 table
    // below the root, where the root is not the level-1 table itself, and a level-2
    // table).
    try space.map(2 * gib, 3 * gib, pages: 512, .kernelData)
    var held = exhaust(frames, leaving: 3)
    #expect(frames.freePageCount == 3)
    // Scattered: 4 MiB + 8 pages across a 1 GiB boundary with a physical address off
    // 2 MiB: a level-1 table is there, but it needs two level-2 and four level-3 tables.
    let start = 5 * gib - twoMiB - 4 * page
    let probes = [start, start + twoMiB, 5 * gib, 5 * gib + twoMiB, 2 * gib, 2 * gib + 9 * page]
    let before = Snapshot(fixture, space, walker, probes)
    do throws(VirtualMemoryError) {
      try space.map(start, 0x5000_0000 + page, pages: 1024 + 8, .kernelData)
      Issue.record("map of 1032 scattered pages with 3 free frames succeeded")
    } catch {
      #expect(error.reason == .outOfMemory)
    }
    #expect(Snapshot(fixture, space, walker, probes) == before)
    #expect(frames.freePageCount == 3)
    #expect(space.checkInvariants() == nil)
    // No frame at all: one page out of the block needs a level-3 table.
    held += exhaust(frames, leaving: 0)
    #expect(frames.freePageCount == 0)
    let blockBefore = Snapshot(fixture, space, walker, probes)
    do throws(VirtualMemoryError) {
      try space.unmap(2 * gib + 9 * page, pages: 1)
      Issue.record("a split with no frame succeeded")
    } catch {
      #expect(error.reason == .outOfMemory)
    }
    do throws(VirtualMemoryError) {
      try space.protect(2 * gib + 9 * page, pages: 1, .kernelReadOnly)
      Issue.record("a split with no frame succeeded")
    } catch {
      #expect(error.reason == .outOfMemory)
    }
    #expect(Snapshot(fixture, space, walker, probes) == blockBefore)
    #expect(leaf(walker, 2 * gib + 9 * page)?.level == 2)
    // Unmapping the whole block needs no frame.
    #expect(try space.unmap(2 * gib, pages: 512) == twoMiB)
    space.releasePooledTables()
    #expect(frames.freePageCount == 2 - fixture.format.firstLevel, "the emptied level-1 (not the root) and level-2 tables came back")
    for page in held { try frames.freePages(page, order: 0) }
    try space.map(start, 0x5000_0000 + page, pages: 1024 + 8, .kernelData)
    #expect(leaf(walker, 5 * gib + twoMiB + 3 * page)?.physical == 0x5000_0000 + page + (2 * twoMiB + 7 * page))
    #expect(space.checkInvariants() == nil)
    space.destroy()
    #expect(frames.count(.pageTable) == 0)
    #expect(frames.checkInvariants() == nil)
  }

  @Test("destroy with mappings, blocks and vmalloc areas live gives every page back; a new space on the frames works", arguments: TestedFormat.allCases)
  func destroyLive(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: tested)
    let frames = fixture.frames
    let freeBefore = frames.freePageCount
    let space = try fixture.space()
    try space.map(Self.gib, 0, pages: (1 << 18) + 600, .kernelData)
    try space.map(40 * Self.gib + Self.page, 0x1000, pages: 100, .kernelText)
    let vmalloc = fixture.format.vmallocWindow.lowerBound
    try space.setVmallocRange(base: vmalloc, limit: vmalloc + Self.gib)
    for bytes in [1, 4096, 5000, 65536] { _ = try space.vmalloc(bytes) }
    _ = try space.allocateStack(bytes: 16384, cpu: 1)
    #expect(frames.count(.vmalloc) > 0)
    space.destroy()
    #expect(frames.freePageCount == freeBefore)
    #expect(frames.count(.vmalloc) == 0 && frames.count(.pageTable) == 0)
    #expect(frames.checkInvariants() == nil)
    let again = try fixture.space()
    try again.map(Self.gib, 0, pages: 3, .kernelData)
    #expect(again.checkInvariants() == nil)
    again.destroy()
    #expect(frames.freePageCount == freeBefore)
  }
}

/// vmalloc, vfree and guard-paged stacks, read back through the walker and the frames.
@Suite struct VmallocTests {
  /// The range the tests give vmalloc: 1 GiB from the start of the format's window.
  static func range(_ fixture: VMFixture) -> (base: UInt, limit: UInt) {
    let base = fixture.format.vmallocWindow.lowerBound
    return (base, base + (1 << 30))
  }

  /// The physical address behind `va`, by the independent walker.
  func physical(_ walker: TranslationWalker, _ va: UInt) -> UInt? {
    if case .success(let translation) = walker.walk(va) { return translation.physical }
    return nil
  }

  @Test("vmalloc(16 KiB): page aligned in the range, four .vmalloc frames, kernel data, zeroed; the page after is a guard", arguments: TestedFormat.allCases)
  func sixteenKiB(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: tested)
    let frames = fixture.frames
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let (base, limit) = Self.range(fixture)
    try space.setVmallocRange(base: base, limit: limit)
    #expect(space.vmallocRange == base..<limit)
    // The first area also allocates the area list; take that out of the count.
    try space.vfree(try space.vmalloc(1))
    let freeBefore = frames.freePageCount
    let vmallocBefore = frames.count(.vmalloc)

    let pointer = try space.vmalloc(16 << 10)
    let start = UInt(bitPattern: pointer)
    #expect(start & 0xfff == 0 && start >= base && start + (16 << 10) <= limit)
    #expect(frames.count(.vmalloc) == vmallocBefore + 4)
    var seen: Set<UInt> = []
    for index: UInt in 0..<4 {
      let va = start + index * 4096
      guard case .success(let walk) = walker.walk(va) else {
        Issue.record("vmalloc page \(index) not mapped")
        continue
      }
      #expect(walk.level == 3 && walk.mapAttributes == .kernelData)
      #expect(!walk.kernelExecutable && !walk.userReadable && !walk.device)
      #expect(space.translate(va)?.physical == walk.physical)
      #expect(frames.owner(ofPhysical: walk.physical) == .vmalloc)
      seen.insert(walk.physical)
      // Zeroed; then written and read back through the direct map (no MMU here).
      let bytes = frames.pointer(toPhysical: walk.physical).assumingMemoryBound(to: UInt64.self)
      #expect((0..<512).allSatisfy { bytes[$0] == 0 })
      for word in 0..<512 { bytes[word] = UInt64(va) &+ UInt64(word) }
    }
    #expect(seen.count == 4, "four distinct frames")
    for index: UInt in 0..<4 {
      let va = start + index * 4096 + 8 * 100
      let word = frames.pointer(toPhysical: try #require(physical(walker, va))).load(as: UInt64.self)
      #expect(word == UInt64(start + index * 4096) + 100)
    }
    let end = start + (16 << 10)
    #expect(physical(walker, end) == nil && space.translate(end) == nil)
    #expect(space.vmallocArea(containing: end) == VmallocAreaDescription(start: start, bytes: 16 << 10, stackOfCPU: nil, inGuardPage: true))
    #expect(space.vmallocArea(containing: start + 5000) == VmallocAreaDescription(start: start, bytes: 16 << 10, stackOfCPU: nil, inGuardPage: false))
    #expect(space.vmallocArea(containing: end + 4096) == nil)
    #expect(space.statistics.vmallocAreas == 1)
    #expect(space.checkInvariants() == nil)

    // vfree of anything but the start is refused.
    for wrong in [start + 4096, start + 8, end, base - 4096] {
      do throws(VirtualMemoryError) {
        try space.vfree(UnsafeMutableRawPointer(bitPattern: wrong)!)
        Issue.record("vfree(\(hex(wrong))) accepted")
      } catch {
        #expect(error.reason == .notVmallocArea && error.address == wrong)
      }
    }
    #expect(physical(walker, start) != nil)
    try space.vfree(pointer)
    #expect(frames.freePageCount == freeBefore)
    #expect(frames.count(.vmalloc) == vmallocBefore)
    for physical in seen { #expect(frames.owner(ofPhysical: physical) == .free) }
    for index: UInt in 0..<4 { #expect(physical(walker, start + index * 4096) == nil) }
    do throws(VirtualMemoryError) {
      try space.vfree(pointer)
      Issue.record("a second vfree accepted")
    } catch {
      #expect(error.reason == .notVmallocArea)
    }
    #expect(space.vmallocArea(containing: start) == nil)
    #expect(space.checkInvariants() == nil)
    space.destroy()
    #expect(frames.count(.vmalloc) == 0)
  }

  @Test("allocateStack: a guard page below and above, the CPU in the description; two stacks never share a guard", arguments: TestedFormat.allCases)
  func stacks(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: tested)
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let (base, limit) = Self.range(fixture)
    try space.setVmallocRange(base: base, limit: limit)
    let first = try space.allocateStack(bytes: 16 << 10, cpu: 3)
    let second = try space.allocateStack(bytes: 8 << 10, cpu: 0)
    for (stack, bytes, cpu) in [(first, UInt(16 << 10), 3), (second, UInt(8 << 10), 0)] {
      #expect(stack.top - stack.bottom == bytes)
      #expect(stack.bottom & 0xfff == 0 && stack.bottom >= base + 4096 && stack.top < limit)
      #expect(physical(walker, stack.bottom) != nil && physical(walker, stack.top - 8) != nil)
      #expect(physical(walker, stack.bottom - 8) == nil, "the guard page below")
      #expect(physical(walker, stack.top) == nil, "the guard page above")
      #expect(space.vmallocArea(containing: stack.bottom - 1) == VmallocAreaDescription(start: stack.bottom, bytes: bytes, stackOfCPU: cpu, inGuardPage: true))
      #expect(space.vmallocArea(containing: stack.top - 1)?.inGuardPage == false)
    }
    // Apart by at least the guard above the first and the guard below the second.
    #expect(second.bottom >= first.top + 2 * 4096 || first.bottom >= second.top + 2 * 4096)
    do throws(VirtualMemoryError) {
      _ = try space.allocateStack(bytes: 4096, cpu: -1)
      Issue.record("a stack for CPU -1")
    } catch {
      #expect(error.reason == .badCount)
    }
    #expect(space.checkInvariants() == nil)
    try space.vfree(UnsafeMutableRawPointer(bitPattern: first.bottom)!)
    try space.vfree(UnsafeMutableRawPointer(bitPattern: second.bottom)!)
    #expect(space.statistics.vmallocAreas == 0 && space.statistics.mappedBytes == 0)
    space.destroy()
  }

  @Test("300 areas of 1 to 40 pages and stacks, freed in random order with more allocated between: invariants hold, no frame lost", arguments: TestedFormat.allCases)
  func manyAreas(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 64 << 20, format: tested)
    let frames = fixture.frames
    let freeStart = frames.freePageCount
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let base = Self.range(fixture).base
    try space.setVmallocRange(base: base, limit: base + (64 << 20))
    var rng = SplitMix(seed: 0x5EED_7AB1E)
    var live: [(start: UInt, pages: Int, stamp: UInt64)] = []
    var stamp: UInt64 = 1
    for round in 0..<1_200 {
      if live.count < 300 && (live.isEmpty || rng.below(3) != 0) {
        let bytes = 1 + rng.below(40 * 4096)
        let pages = (bytes + 4095) / 4096
        let start: UInt
        if rng.below(4) == 0 {
          start = try space.allocateStack(bytes: bytes, cpu: rng.below(8)).bottom
        } else {
          start = UInt(bitPattern: try space.vmalloc(bytes))
        }
        // Stamp the first word of every page through the walker's physical address.
        for page in 0..<pages {
          let va = start + UInt(page) * 4096
          frames.pointer(toPhysical: try #require(physical(walker, va))).storeBytes(of: stamp &+ UInt64(page), as: UInt64.self)
        }
        live.append((start, pages, stamp))
        stamp += 1000
      } else {
        let victim = live.remove(at: rng.below(live.count))
        for page in 0..<victim.pages {
          let va = victim.start + UInt(page) * 4096
          let word = frames.pointer(toPhysical: try #require(physical(walker, va))).load(as: UInt64.self)
          #expect(word == victim.stamp &+ UInt64(page), "area \(hex(victim.start)) page \(page)")
        }
        try space.vfree(UnsafeMutableRawPointer(bitPattern: victim.start)!)
        #expect(physical(walker, victim.start) == nil)
      }
      if round % 50 == 0 {
        #expect(space.checkInvariants() == nil, "round \(round)")
        #expect(space.statistics.vmallocAreas == live.count)
        #expect(space.statistics.mappedBytes == UInt(live.reduce(0) { $0 + $1.pages }) << 12)
      }
    }
    // No two areas share a frame or overlap, guard pages included.
    let sorted = live.sorted { $0.start < $1.start }
    for (a, b) in zip(sorted, sorted.dropFirst()) { #expect(a.start + UInt(a.pages) * 4096 < b.start) }
    for victim in live.shuffled() { try space.vfree(UnsafeMutableRawPointer(bitPattern: victim.start)!) }
    #expect(space.checkInvariants() == nil)
    #expect(space.statistics.mappedBytes == 0 && space.statistics.tablePages == 1)
    // Only the area list is left: 16-byte records for up to 300 areas, 1 or 2 pages.
    #expect((1...2).contains(frames.count(.vmalloc)))
    space.destroy()
    #expect(frames.freePageCount == freeStart)
    #expect(frames.checkInvariants() == nil)
  }
}
