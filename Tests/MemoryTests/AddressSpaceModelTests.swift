import Glibc
import KernelSync
import PageFrames
import Scenarios
import Testing
import VirtualMemory

/// Page frames over simulated RAM for address-space tests: the tables come from them,
/// and the walker reads the tables through them.
final class VMFixture {
  static let ramBase: UInt = 0x4000_0000
  let ram: SimulatedRAM
  let frames: PageFrameAllocator

  /// `bytes` of RAM at `ramBase`: the page metadata at its start, the rest free.
  init(bytes: Int = 64 << 20) throws {
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

  func space() throws -> AddressSpace { try AddressSpace(frames: frames, maintenance: .hosted) }

  /// The independent walker over `space`'s tables. Every word it reads must lie in a
  /// page the frames say is a page table (else the read is refused as a fault).
  func walker(_ space: AddressSpace) -> TranslationWalker {
    let frames = self.frames
    return TranslationWalker(root: space.root) { physical in
      guard frames.owner(ofPhysical: physical) == .pageTable else {
        Issue.record("the walk read \(hex(physical)), not in a .pageTable page")
        return 0
      }
      return frames.pointer(toPhysical: physical).load(as: UInt64.self)
    }
  }

  /// Table pages in use by every address space over these frames, counted by the
  /// frames (the state page of each space is a `.pageTable` page too).
  var pageTablePages: Int { frames.count(.pageTable) }
}

func hex(_ value: UInt) -> String { "0x" + String(value, radix: 16) }

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
  func checkAll(_ context: @autoclosure () -> String) -> Bool {
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
      guard case .failure(.translation) = walker.walk(outside), space.translate(outside) == nil else {
        Issue.record("\(context()): \(hex(outside)), outside the window, is mapped")
        return false
      }
    }
    guard space.statistics.mappedBytes == UInt(model.mapped) << 12 else {
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
  /// The window: 4 GiB from 510 GiB, across the 512 GiB boundary (two level-0 entries).
  static let windowBase: UInt = 510 << 30
  static let windowBytes: UInt = 4 << 30
  /// Where linear mappings lead: window offset + this (1 GiB aligned, not RAM).
  static let linearPhysical: UInt = 0x40_0000_0000
  static let operations = 1_000_000
  static let fullCheckEvery = 10_000

  @Test("a million random map/unmap/protect calls against a page model, the walker and translate")
  func randomModel() throws {
    let fixture = try VMFixture(bytes: 64 << 20)
    let frames = fixture.frames
    let freeBefore = frames.freePageCount
    let space = try fixture.space()
    let model = PageModel(base: Self.windowBase, bytes: Self.windowBytes)
    let agreement = Agreement(space: space, walker: fixture.walker(space), model: model)
    var rng = SplitMix(seed: 0x7AB1E5)
    let windowPages = Int(Self.windowBytes >> 12)
    let firstPage = Self.windowBase >> 12
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
          model.map(page, count: count, physicalPage: physical, attributes)
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
          model.protect(page, count: count, attributes)
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
      "AddressSpace model: \(operation) calls: \(counts); tables \(space.statistics.tablePages), splits \(space.statistics.blockSplits), flushes \(space.statistics.fullFlushes)"
    )
    // The interesting cases happened.
    #expect(counts.already > 1000 && counts.notMapped > 1000 && counts.mapped > 1000 && counts.gigabytes > 0)
    #expect(space.statistics.blockSplits > 100)

    // Everything out in one call, then nothing may be left but the root.
    let removed = try space.unmap(Self.windowBase, pages: windowPages)
    #expect(removed == UInt(model.mapped) << 12)
    model.unmap(firstPage, count: windowPages)
    #expect(agreement.checkAll("after unmapping the window"))
    #expect(space.statistics.tablePages == 1)
    #expect(fixture.pageTablePages == 2, "the root and the state page")
    space.destroy()
    #expect(frames.freePageCount == freeBefore)
    #expect(frames.count(.pageTable) == 0)
    #expect(frames.checkInvariants() == nil)
  }
}
