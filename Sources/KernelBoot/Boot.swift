// The kernel's start-up sequence, top to bottom. boot.S has already parked the other
// cores, dropped to EL1, enabled FP/SIMD, set the stack, zeroed .bss and turned on the MMU.
#if arch(arm64) && os(none)
import Arch
import KernelHeap
@_exported import MemInit
@_exported import PageFrames

/// Virtual nanoseconds memInit took at boot: guest instructions under `-icount shift=0`.
public nonisolated(unsafe) var bootMemInitNanoseconds: UInt64 = 0

/// Brings up memory and prints the banner and the memory map. Returns the layout.
/// Panics ("memInit: reason address") if RAM cannot hold the kernel, array and heap.
/// Afterwards `kernelMemory` is set up: kmalloc, kfree, allocPage and the rest work.
@discardableResult
public func bootMemory() -> BootLayout {
  // 0. Bad input anywhere in the memory subsystem stops the kernel with a precise line.
  badInputHandler = { report in Machine.panic(report.function, report.reason, report.address) }

  // 1. Banner: board, exception levels, kernel range.
  let image = Platform.kernelImage
  kput("SwiftKernelMemory: board ")
  kput(Board.name)
  kput(", entered at EL")
  kputDecimal(Platform.entryExceptionLevel)
  kput(", running at EL")
  kputDecimal(Platform.currentExceptionLevel)
  kput("\n")

  // 2. Discover RAM through Arch: the mailbox on raspi3b, the device tree on virt.
  guard let ram = Platform.discoverMemory() else {
    Machine.panic("bootMemory", "firmware did not report RAM", 0)
  }
  kput("RAM base ")
  kputHex(ram.ramBase, digits: 8)
  kput(" size ")
  kputHex(ram.ramSize, digits: 8)
  kput(" (")
  kputDecimal(ram.ramSize >> 20)
  kput(" MiB)\nkernel [")
  kputHex(image.start)
  kput(", ")
  kputHex(image.end)
  kput(")\n")

  // 3. memInit: page array after __end, reservations, free lists, then heapInit.
  let config = MemInitConfig(
    ramBase: ram.ramBase, ramSize: ram.ramSize, kernelStart: image.start, kernelEnd: image.end,
    dtbStart: ram.dtbStart, dtbEnd: ram.dtbEnd, zeroFill: Platform.zeroFill)
  let layout: BootLayout
  let memInitStart = Clock.ticks
  do {
    layout = try memInit(config)
  } catch {
    Machine.panic("memInit", error.reason.text, error.address)
  }
  bootMemInitNanoseconds = Clock.nanoseconds(since: memInitStart)

  // 4. Report: the memory map, each kind's range and page count, and the total.
  guard let frames = kernelMemory.frames else { Machine.panic("bootMemory", KernelMemory.notSetUpReason, 0) }
  printMemoryMap(MemoryMap(frames))
  kput("heap [")
  kputHex(layout.heapStart)
  kput(", ")
  kputHex(layout.heapEnd)
  kput(")\n")
  return layout
}

/// Prints one line per region and a final line proving the pages add up to RAM.
public func printMemoryMap(_ map: MemoryMap) {
  kput("memory map:\n")
  for index in 0..<map.count {
    let region = map[index]
    kput("  ")
    kput(region.owner.label)
    kput(" [")
    kputHex(region.start, digits: 8)
    kput(", ")
    kputHex(region.end, digits: 8)
    kput(") ")
    kputDecimal(UInt(region.pages))
    kput(" pages\n")
  }
  let expected = Int(map.ramSize >> UInt(Page.shift))
  kput("  total ")
  kputDecimal(UInt(map.totalPages))
  kput(" pages = ")
  kputDecimal(UInt(map.totalPages) << 12)
  kput(" bytes; RAM ")
  kputDecimal(map.ramSize)
  kput(" bytes: ")
  kput(map.totalPages == expected ? "exact\n" : "MISMATCH\n")
}

#endif
