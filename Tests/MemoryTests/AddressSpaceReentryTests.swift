import KernelSync
import PageFrames
import Testing
@testable import VirtualMemory

/// An address space entered again on a CPU that holds its lock (an exception handler
/// that maps while its CPU is inside `map`), and vmalloc sizes that cannot be had.
@Suite struct AddressSpaceReentryTests {
  @Test("every call on a space whose lock this CPU holds is reentered, and changes nothing", arguments: TestedFormat.allCases)
  func reentered(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(format: tested)
    let space = try fixture.space()
    let vmalloc = fixture.format.vmallocWindow.lowerBound
    try space.setVmallocRange(base: vmalloc, limit: vmalloc + (1 << 30))
    let va: UInt = 3 << 30
    try space.map(va, 0x5000_0000, pages: 2, .kernelData)
    let before = space.statistics
    let free = fixture.frames.freePageCount
    #expect(space.locked.acquireAcrossCalls(cpu: CPU.current))
    func expectReentered(_ what: String, _ body: () throws(VirtualMemoryError) -> Void) {
      expectRefused(.reentered, "\(what), with the lock held by this CPU", body)
    }
    expectReentered("map") { () throws(VirtualMemoryError) in try space.map(va + 8192, 0x6000_0000, pages: 1, .kernelData) }
    expectReentered("unmap") { () throws(VirtualMemoryError) in _ = try space.unmap(va, pages: 2) }
    expectReentered("protect") { () throws(VirtualMemoryError) in try space.protect(va, pages: 1, .kernelReadOnly) }
    expectReentered("vmalloc") { () throws(VirtualMemoryError) in _ = try space.vmalloc(4096) }
    expectReentered("vfree") { () throws(VirtualMemoryError) in try space.vfree(UnsafeMutableRawPointer(bitPattern: vmalloc)!) }
    // translate reads without the lock instead of refusing: what an exception report needs.
    #expect(space.translate(va)?.physical == 0x5000_0000)
    #expect(space.locked.releaseAcrossCalls(cpu: CPU.current))
    #expect(space.statistics == before)
    #expect(fixture.frames.freePageCount == free)
    #expect(space.translate(va + 8192) == nil)
    #expect(space.translate(va + 4096)?.attributes == .kernelData)
    #expect(space.checkInvariants() == nil)
    space.destroy()
  }

  @Test("vmalloc of 0 or fewer bytes is badCount; past the vmalloc range or the frames, outOfMemory with nothing kept", arguments: TestedFormat.allCases)
  func vmallocSizes(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(bytes: 16 << 20, format: tested)
    let vmalloc = fixture.format.vmallocWindow.lowerBound
    let space = try fixture.space()
    for bytes in [0, -1, Int.min] {
      do throws(VirtualMemoryError) {
        _ = try space.vmalloc(bytes)
        Issue.record("vmalloc(\(bytes)) succeeded")
      } catch {
        #expect(error.reason == .badCount)
      }
    }
    // No range set: nowhere to put an area.
    do throws(VirtualMemoryError) {
      _ = try space.vmalloc(4096)
      Issue.record("vmalloc without a range succeeded")
    } catch {
      #expect(error.reason == .outOfMemory)
    }
    try space.setVmallocRange(base: vmalloc, limit: vmalloc + (64 << 12))
    let free = fixture.frames.freePageCount
    let tables = space.statistics.tablePages
    for bytes in [65 << 12, 64 << 12, Int.max] {
      do throws(VirtualMemoryError) {
        _ = try space.vmalloc(bytes)
        Issue.record("vmalloc(\(bytes)) fit a 64-page range with its guard page")
      } catch {
        #expect(error.reason == .outOfMemory || error.reason == .badCount)
      }
    }
    // More pages than the 16 MiB of frames hold, in a range that has room for them.
    let big = try VMFixture(bytes: 16 << 20, format: tested)
    let bigSpace = try big.space()
    try bigSpace.setVmallocRange(base: vmalloc, limit: vmalloc + (1 << 30))
    let bigFree = big.frames.freePageCount
    do throws(VirtualMemoryError) {
      _ = try bigSpace.vmalloc(32 << 20)
      Issue.record("vmalloc(32 MiB) on 16 MiB succeeded")
    } catch {
      #expect(error.reason == .outOfMemory)
    }
    bigSpace.releasePooledTables()
    #expect(bigSpace.statistics.vmallocAreas == 0 && bigSpace.statistics.mappedBytes == 0)
    #expect(big.frames.freePageCount == bigFree - 1, "all but the area list's page came back")
    #expect(bigSpace.checkInvariants() == nil)
    bigSpace.destroy()
    #expect(big.frames.freePageCount == bigFree + 2, "and the root and state pages with destroy")
    #expect(fixture.frames.freePageCount == free && space.statistics.tablePages == tables)
    space.destroy()
  }

  @Test("protect that changes the memory type (Normal to Device and back) is break-before-make, one invalidation each; permissions alone change in place", arguments: TestedFormat.allCases)
  func memoryTypeChange(_ tested: TestedFormat) throws {
    let fixture = try VMFixture(format: tested)
    // A format without memory types keeps no `.device`: the change is one of
    // permissions only, in place, and still one invalidation.
    let device = fixture.format.expressible(.kernelDevice)
    let space = try fixture.space()
    let walker = fixture.walker(space)
    let va: UInt = 5 << 30
    try space.map(va, 0x7000_0000, pages: 4, .kernelData)
    var before = space.statistics
    try space.protect(va + 4096, pages: 1, .kernelDevice)
    #expect(space.statistics.pageInvalidations == before.pageInvalidations + 1)
    #expect(space.translate(va + 4096)?.attributes == device)
    #expect(space.translate(va)?.attributes == .kernelData && space.translate(va + 8192)?.attributes == .kernelData)
    if case .success(let leaf) = walker.walk(va + 4096) {
      #expect(leaf.physical == 0x7000_1000 && leaf.device == fixture.format.device.isExpressed)
    } else {
      Issue.record("the walker found no leaf after the change of memory type")
    }
    before = space.statistics
    try space.protect(va, pages: 2, .kernelReadOnly)  // one type change, one permission change
    #expect(space.statistics.pageInvalidations == before.pageInvalidations + 2)
    #expect(space.translate(va + 4096)?.attributes == .kernelReadOnly && space.translate(va)?.attributes == .kernelReadOnly)
    #expect(space.checkInvariants() == nil)
    space.destroy()
  }
}
