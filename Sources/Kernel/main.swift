// `make run`: boot, bring up memory, show the map, prove the heap serves Swift's
// runtime, and exit with status 0.
#if os(none)
import KernelMemory
import Arch
import KernelBoot
import KernelHeap

bootMemory()

// Swift's own allocations now go through kmalloc (posix_memalign/free).
var squares: [Int] = []
for value in 0..<1000 { squares.append(value * value) }
var names: [Int: StaticString] = [1: "one", 2: "two", 3: "three"]
names[4] = "four"
let sum = squares.reduce(0, +)
guard let heap = kernelMemory.heap, let frames = kernelMemory.frames else {
  Machine.panic("kernel", KernelMemory.notSetUpReason, 0)
}
let stats = heap.statistics
kput("swift runtime on kmalloc: array sum ")
kputDecimal(UInt(sum))
kput(", dictionary entries ")
kputDecimal(UInt(names.count))
kput(", heap in use ")
kputDecimal(UInt(stats.usedBytes))
kput(" bytes in ")
kputDecimal(UInt(stats.allocatedBlocks))
kput(" blocks\n")
if let failure = heapCheck() {
  Machine.panic("heapCheck", failure.reason, failure.address)
}
kput("heapCheck: ok\nfree pages ")
kputDecimal(UInt(frames.freePageCount))
kput(", largest free run ")
kputDecimal(UInt(frames.largestFreeRun))
kput(" pages\nbye\n")
Machine.exit(0)
#else
print("kernel: this target boots under QEMU; run `make run`")
#endif
