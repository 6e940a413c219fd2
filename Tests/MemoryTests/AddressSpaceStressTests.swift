import Foundation
import KernelSync
import PageFrames
import Scenarios
import Testing
import VirtualMemory

/// One address space, four threads standing in for CPUs: each maps, unmaps, protects and
/// translates in a window of its own (the windows share the upper tables, so table
/// pages empty and fill under each other), and all of them vmalloc, stamp, hand over
/// and vfree areas of one shared vmalloc range. Run under ThreadSanitizer by
/// `make tsan-test`. Afterwards the independent walker reads every window against each
/// thread's model, the invariants hold and, once everything is unmapped and the space
/// destroyed, no frame is missing.
@Suite struct AddressSpaceStressTests {
  static let threads = 4
  static let operations = 20_000
  /// Thread `i`'s window: 64 MiB at `windowBase + i * 128 MiB` (all four in one 1 GiB
  /// level-1 entry, so they share a level-2 table; apart, so each window's edges are
  /// unmapped).
  static let windowBase: UInt = 64 << 30
  static let windowBytes: UInt = 64 << 20
  static let windowStride: UInt = 128 << 20

  /// What a thread found wrong (threads record no issues themselves; the test reads these).
  struct Outcome {
    var failures = 0
    var first = ""
    var calls = 0
    var vmallocs = 0
    var crossFrees = 0

    mutating func fail(_ text: @autoclosure () -> String) {
      if failures == 0 { first = text() }
      failures += 1
    }
  }

  /// Areas handed from one thread to the next: thread `i` puts into box `i + 1`
  /// (modulo the threads) and takes from box `i`, so every area taken out was allocated
  /// by another thread, whichever order the threads happen to run in.
  final class Mailbox: @unchecked Sendable {
    let lock = NSLock()
    var boxes: [[(start: UInt, pages: Int, stamp: UInt64)]]
    init(threads: Int) { boxes = Array(repeating: [], count: threads) }
    func put(_ area: (start: UInt, pages: Int, stamp: UInt64), from thread: Int) {
      lock.lock()
      boxes[(thread + 1) % boxes.count].append(area)
      lock.unlock()
    }
    func take(for thread: Int) -> (start: UInt, pages: Int, stamp: UInt64)? {
      lock.lock()
      defer { lock.unlock() }
      return boxes[thread].popLast()
    }
    /// What is left (after every thread has finished).
    var areas: [(start: UInt, pages: Int, stamp: UInt64)] { boxes.flatMap { $0 } }
  }

  static func run(
    index: Int, space: AddressSpace, frames: PageFrameAllocator, model: PageModel, mailbox: Mailbox
  ) -> Outcome {
    CPU.bind(index)
    var outcome = Outcome()
    var rng = SplitMix(seed: 0xC0FFEE + UInt64(index))
    let windowPages = model.pageCount
    let firstPage = model.firstPage
    var mine: [(start: UInt, pages: Int, stamp: UInt64)] = []
    var stamp = UInt64(index) << 48

    /// translate agrees with the model at `page`.
    func probe(_ page: UInt, _ context: String) {
      let expected = model[page: page]
      let translated = space.translate(page << 12 + 0x18)
      if let expected {
        guard let translated, translated.physical == expected.physicalPage << 12 + 0x18,
          translated.attributes == expected.attributes
        else { return outcome.fail("\(context): \(hex(page << 12)): \(String(describing: translated)), model \(expected)") }
      } else if translated != nil {
        outcome.fail("\(context): \(hex(page << 12)) translates, not mapped in the model")
      }
    }
    /// Stamps (`write`) or checks each page of an area through its physical address.
    func stampArea(_ area: (start: UInt, pages: Int, stamp: UInt64), write: Bool, _ context: String) {
      for page in 0..<area.pages {
        guard let physical = space.translate(area.start + UInt(page) << 12)?.physical,
          frames.owner(ofPhysical: physical) == .vmalloc
        else { return outcome.fail("\(context): vmalloc page \(page) of \(hex(area.start)) not mapped to a .vmalloc frame") }
        let word = frames.pointer(toPhysical: physical).assumingMemoryBound(to: UInt64.self)
        if write {
          word.pointee = area.stamp &+ UInt64(page)
        } else if word.pointee != area.stamp &+ UInt64(page) {
          return outcome.fail("\(context): vmalloc page \(page) of \(hex(area.start)) lost its stamp")
        }
      }
    }
    func free(_ area: (start: UInt, pages: Int, stamp: UInt64), _ context: String) {
      stampArea(area, write: false, context)
      do throws(VirtualMemoryError) {
        try space.vfree(UnsafeMutableRawPointer(bitPattern: area.start)!)
      } catch {
        outcome.fail("\(context): vfree: \(error)")
      }
    }

    for operation in 0..<operations {
      let context = "thread \(index) call \(operation)"
      outcome.calls += 1
      let kind = rng.below(100)
      if kind < 10 {
        // Shared vmalloc: allocate, free own, or free another thread's.
        switch rng.below(3) {
        case 0:
          let bytes = 1 + rng.below(8 * 4096)
          do throws(VirtualMemoryError) {
            let start: UInt
            if rng.below(4) == 0 {
              start = try space.allocateStack(bytes: bytes, cpu: index).bottom
            } else {
              start = UInt(bitPattern: try space.vmalloc(bytes))
            }
            stamp += 100
            let area = (start: start, pages: (bytes + 4095) / 4096, stamp: stamp)
            stampArea(area, write: true, context)
            if rng.below(2) == 0 { mailbox.put(area, from: index) } else { mine.append(area) }
            outcome.vmallocs += 1
          } catch {
            outcome.fail("\(context): vmalloc(\(bytes)): \(error)")
          }
        case 1:
          if !mine.isEmpty { free(mine.remove(at: rng.below(mine.count)), context) }
        default:
          if let area = mailbox.take(for: index) {
            if area.stamp >> 48 == UInt64(index) { outcome.fail("\(context): took an area of its own from the mailbox") }
            free(area, context)
            outcome.crossFrees += 1
          }
        }
        continue
      }
      // The range, in this thread's window: mostly a few pages, sometimes a 2 MiB piece.
      var start = rng.below(windowPages)
      var count = 1 + rng.below(16)
      if rng.below(10) == 0 {
        start = rng.below(windowPages >> 9) << 9
        count = 512 + (rng.below(3) == 0 ? rng.below(5) : 0)
      }
      count = min(count, windowPages - start)
      let page = firstPage + UInt(start)
      if kind < 50 {
        // Linear physical addresses (2 MiB blocks where aligned) or one page off.
        let physical = 0x10_0000 + (page - firstPage) + UInt(index) << 20 + (rng.below(4) == 0 ? 1 : 0)
        let attributes: [MapAttributes] = [.kernelData, .kernelReadOnly, .kernelText, [.read, .user], [.read, .write, .user]]
        let chosen = attributes[rng.below(attributes.count)]
        let first = model.firstPage(mapped: true, from: page, count: count)
        do throws(VirtualMemoryError) {
          try space.map(page << 12, physical << 12, pages: count, chosen)
          if first != nil { outcome.fail("\(context): map over \(hex(first! << 12)) succeeded") }
          model.map(page, count: count, physicalPage: physical, chosen)
        } catch {
          if error.reason != .alreadyMapped || first == nil || error.address != first! << 12 {
            outcome.fail("\(context): map: \(error), model's first mapped \(String(describing: first))")
          }
        }
      } else if kind < 80 {
        let expected = model.mappedCount(from: page, count: count)
        do throws(VirtualMemoryError) {
          let removed = try space.unmap(page << 12, pages: count)
          if removed != UInt(expected) << 12 { outcome.fail("\(context): unmap removed \(removed), model \(expected) pages") }
          model.unmap(page, count: count)
        } catch {
          outcome.fail("\(context): unmap: \(error)")
        }
      } else {
        let attributes: MapAttributes = rng.below(2) == 0 ? .kernelReadOnly : .kernelData
        let hole = model.firstPage(mapped: false, from: page, count: count)
        do throws(VirtualMemoryError) {
          try space.protect(page << 12, pages: count, attributes)
          if hole != nil { outcome.fail("\(context): protect over a hole succeeded") }
          model.protect(page, count: count, attributes)
        } catch {
          if error.reason != .notMapped || hole == nil || error.address != hole! << 12 {
            outcome.fail("\(context): protect: \(error), model's first hole \(String(describing: hole))")
          }
        }
      }
      probe(page, context)
      probe(page + UInt(count - 1), context)
      probe(firstPage + UInt(rng.below(windowPages)), context)
    }
    for area in mine { free(area, "thread \(index) at the end") }
    return outcome
  }

  // One format at a time: each run binds its threads to CPUs 0 to 3.
  @Test("4 threads map, unmap, protect and translate in their windows and share vmalloc: models agree, nothing leaks", .serialized, arguments: TestedFormat.allCases)
  func stress(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 64 << 20, format: tested)
    let frames = fixture.frames
    let freeBefore = frames.freePageCount
    let space = try fixture.space()
    let vmallocBase = fixture.format.vmallocWindow.lowerBound
    try space.setVmallocRange(base: vmallocBase, limit: vmallocBase + (1 << 30))
    let models = (0..<Self.threads).map {
      PageModel(base: Self.windowBase + UInt($0) * Self.windowStride, bytes: Self.windowBytes)
    }
    let mailbox = Mailbox(threads: Self.threads)
    let outcomes = UnsafeMutablePointer<Outcome>.allocate(capacity: Self.threads)
    outcomes.initialize(repeating: Outcome(), count: Self.threads)
    defer {
      outcomes.deinitialize(count: Self.threads)
      outcomes.deallocate()
    }
    nonisolated(unsafe) let shared = (outcomes, models)
    let done = DispatchGroup()
    for index in 0..<Self.threads {
      done.enter()
      Thread.detachNewThread {
        shared.0[index] = Self.run(index: index, space: space, frames: frames, model: shared.1[index], mailbox: mailbox)
        done.leave()
      }
    }
    done.wait()

    var calls = 0, vmallocs = 0, crossFrees = 0
    for index in 0..<Self.threads {
      let outcome = outcomes[index]
      #expect(outcome.failures == 0, "thread \(index): \(outcome.failures) failures, first: \(outcome.first)")
      calls += outcome.calls
      vmallocs += outcome.vmallocs
      crossFrees += outcome.crossFrees
    }
    #expect(calls == Self.threads * Self.operations)
    #expect(vmallocs > 1000 && crossFrees > 100, "\(vmallocs) vmallocs, \(crossFrees) freed by another thread")
    print("AddressSpace stress, \(tested): \(calls) calls, \(vmallocs) vmallocs, \(crossFrees) freed by another thread; \(space.statistics)")

    // The walker over every window against its thread's model; the mailbox's areas.
    let walker = fixture.walker(space)
    for (index, model) in models.enumerated() {
      #expect(Agreement(space: space, walker: walker, model: model).checkAll("window \(index)", mappedBytes: false))
    }
    let leftPages = mailbox.areas.reduce(0) { $0 + $1.pages }
    #expect(space.statistics.mappedBytes == UInt(models.reduce(0) { $0 + $1.mapped } + leftPages) << 12)
    #expect(space.statistics.vmallocAreas == mailbox.areas.count)
    #expect(space.checkInvariants() == nil)

    for area in mailbox.areas { try space.vfree(UnsafeMutableRawPointer(bitPattern: area.start)!) }
    for (index, model) in models.enumerated() {
      #expect(try space.unmap(Self.windowBase + UInt(index) * Self.windowStride, pages: model.pageCount) == UInt(model.mapped) << 12)
    }
    #expect(space.statistics.mappedBytes == 0 && space.statistics.tablePages == 1)
    #expect(space.checkInvariants() == nil)
    space.destroy()
    #expect(frames.freePageCount == freeBefore)
    #expect(frames.checkInvariants() == nil)
  }
}
