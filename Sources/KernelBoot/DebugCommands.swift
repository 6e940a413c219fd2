// What `scripts/gdb/kmem.py` calls in the stopped kernel: each function prints into
// the debug buffer (putchar's capture, ArchSupport/libc.c) and returns its address,
// which gdb reads as a string. They only read the structures; the checks are the same
// ones `heapCheck()` and `checkInvariants()` run.
#if os(none)
import KernelMemory
import Arch
import ArchSupport
import KernelHeap
import MemInit
import PageFrames

/// Runs `body` with its output captured; returns the buffer.
private func captured(_ body: () -> Void) -> UnsafePointer<CChar> {
  arch_debug_capture(1)
  body()
  arch_debug_capture(0)
  return arch_debug_buffer()
}

/// `kmem map`: the memory map, as the boot log prints it.
@_cdecl("kmem_debug_map")
public func kmemDebugMap() -> UnsafePointer<CChar> {
  captured {
    guard let frames = kernelMemory.frames else { return kput("memory not set up\n") }
    BoardPlatform().printMemoryMap(MemoryMap(frames))
  }
}

/// `kmem page ADDR`: the page entry of a physical address and the run it belongs to.
@_cdecl("kmem_debug_page")
public func kmemDebugPage(_ address: UInt) -> UnsafePointer<CChar> {
  captured {
    guard let frames = kernelMemory.frames else { return kput("memory not set up\n") }
    guard let index = frames.pageIndex(ofPhysical: address) else {
      kput("page of ")
      kputHex(address)
      return kput(": outside RAM (in no range the page array covers)\n")
    }
    let entry = frames.entries[index]
    kput("page ")
    kputHex(Page.roundDown(address))
    kput(": entry ")
    kputDecimal(UInt(index))
    kput(", owner ")
    kput(entry.owner.label)
    kput(entry.isBlockHead ? " head" : " body")
    if entry.isBlockHead && entry.order != PageEntry.noOrder {
      kput(", order ")
      kputDecimal(UInt(entry.order))
    }
    if entry.flags & PageEntry.flagHot != 0 { kput(", in the hot cache") }
    kput("\n")
    if let run = frames.run(containing: address) {
      kput("  run [")
      kputHex(run.start)
      kput(", ")
      kputHex(run.start + UInt(run.pages) << 12)
      kput(") ")
      kputDecimal(UInt(run.pages))
      kput(" pages, tag ")
      kputHex(UInt(run.tag))
      kput("\n")
    }
  }
}

/// `kmem heap`: the heap's statistics, and its ASCII map when it is small.
@_cdecl("kmem_debug_heap")
public func kmemDebugHeap() -> UnsafePointer<CChar> {
  captured {
    guard let heap = kernelMemory.heap else { return kput("memory not set up\n") }
    let stats = heap.statistics
    // No arrays here: nothing may allocate while the kernel is stopped in the debugger.
    func line(_ label: StaticString, _ value: Int) {
      kput(label)
      kputDecimal(UInt(bitPattern: value))
      kput("\n")
    }
    line("claimed bytes  ", stats.claimedBytes)
    line("used bytes     ", stats.usedBytes)
    line("free bytes     ", stats.freeBytes)
    line("peak used      ", stats.peakUsedBytes)
    line("blocks         ", stats.allocatedBlocks)
    line("free blocks    ", stats.freeBlocks)
    line("largest free   ", stats.largestFreeBlock)
    line("arenas         ", stats.arenas)
    line("large allocs   ", stats.largeAllocations)
    line("large bytes    ", stats.largeBytes)
    line("slab bytes     ", stats.slabBytes)
    line("slab objects   ", stats.slabObjects)
    if stats.claimedBytes <= 2 << 20 {
      kput("map (1 KiB a character):\n")
      heap.drawMap { _ = putchar(Int32($0)) }
    }
  }
}

/// One check's line: "label ok", or "label reason value".
private func report(_ label: StaticString, _ reason: StaticString?, _ value: UInt) {
  kput(label)
  guard let reason else { return kput("ok\n") }
  kput(reason)
  kput(" ")
  kputHex(value)
  kput("\n")
}

/// `kmem check`: heapCheck and the page allocator's invariants.
@_cdecl("kmem_debug_check")
public func kmemDebugCheck() -> UnsafePointer<CChar> {
  captured {
    guard let frames = kernelMemory.frames else { return kput("memory not set up\n") }
    let heapFailure = heapCheck()
    report("heapCheck: ", heapFailure?.reason, UInt(heapFailure?.address ?? 0))
    let pageFailure = frames.checkInvariants()
    report("page invariants: ", pageFailure?.reason, UInt(bitPattern: pageFailure?.pageIndex ?? 0))
  }
}

#endif
